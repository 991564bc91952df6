package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/binstore"
	"github.com/circuit-project/circuit/internal/cluster"
	"github.com/circuit-project/circuit/internal/discover"
	"github.com/circuit-project/circuit/internal/element/docker"
	"github.com/circuit-project/circuit/internal/graveyard"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/label"
	"github.com/circuit-project/circuit/internal/metrics"
	"github.com/circuit-project/circuit/internal/oplog"
	"github.com/circuit-project/circuit/internal/revocation"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/wire"
)

// Config configures a server.
type Config struct {
	Addr  string // -a: host[:port]; port 0 picks a free one
	Iface string // -if: bind this interface's address
	// Bind, when set, is the host to bind (0.0.0.0 for every address) while
	// the server advertises the address of Addr or Iface, on the same port.
	Bind     string
	Join     []string
	Discover string        // -discover: multicast group:port, "" for none
	Key      *security.Key // nil: plaintext
	VarDir   string        // -var: lock, logs; "" for none
	Docker   bool          // -docker: drive the Docker engine for container elements
	Timing   cluster.Timing
	Labels   label.Set // -label key=value, gossiped to every member
	DC       string    // -dc: the server's datacenter; "" for none
	// FSRoot, when set, confines circuit cp on this server to the
	// directory; "" allows every path.
	FSRoot string
	// Metrics, when set, is the HOST:PORT where the server serves its
	// Prometheus metrics at /metrics (package metrics); "" for none.
	Metrics string
	Logger  *slog.Logger
	// Check, when set, is asked before each operation runs, where it
	// runs, with the operation's name (Proc.Make, Stream.stdout) and its
	// anchor path ("" when the operation names none before it starts);
	// an error refuses the operation, as a failure of the error's class
	// (package fault). Tests refuse operations with it in every class.
	Check func(op, path string) error
	// CredLife is how long the credential of a process started with
	// Cmd.Cred lasts before the server renews it (0: a day); tests
	// shorten it.
	CredLife time.Duration
	// NoExec (-no-exec) refuses every operation that starts a command
	// (package op: mkproc, run, exec, mkdkr, Spawn) to everyone, the key's
	// holder included.
	NoExec bool
	// Audit (-audit FILE), when set, is the file the server appends every
	// operation's records to, as JSON lines (package oplog: audit.go).
	Audit string
	// Graveyard bounds the records of ended workers the server keeps
	// (-graveyard-max, -graveyard-age); zero fields take the defaults.
	Graveyard graveyard.Limits
}

// Server is one running circuit server.
type Server struct {
	cfg     Config
	id      ident.ID
	url     ident.URL
	started time.Time
	log     *slog.Logger
	ops     *oplog.Log
	audit   *oplog.Audit     // nil without Config.Audit
	revoked *revocation.List // the cluster's revoked credentials (revoke.go)
	yard    *graveyard.Yard  // the records of workers that ended here
	// ring is the server's keys (keyring.go): nil without Config.Key.
	ring *security.Ring

	ln      *net.TCPListener
	cluster *cluster.Cluster
	disc    *discover.Node
	rpc     *grpc.Server
	rpcLn   *connListener
	tree    *anchor.Tree
	tomb    tomb
	files   *os.Root        // where circuit cp resolves paths: / or -fs-root
	dirs    anchorfs.Table  // this server's part of the anchor file system
	bins    *binstore.Store // uploaded binaries, for Spawn
	builds  builds          // what stored binaries' builds recorded
	subscriptions
	serial atomic.Uint64 // numbers elements
	lock   *os.File
	docker *docker.Engine // nil without -docker
	// metrics is nil unless Config.Metrics is set: its hooks do nothing.
	metrics   *metrics.Set
	metricsEP *metrics.Endpoint

	ctx    context.Context // canceled by Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server starts

	mu sync.Mutex
	// conns are the open connections, with how each client connection
	// authenticated (connAuth).
	conns    map[net.Conn]connAuth
	refusals refusalLog
	unauth   unauthLimit
	joins    joinTable // of servers announced by discovery

	// expected are the workers on other servers watched for their host
	// (expect.go), by host; self is the server's client of itself.
	expectMu sync.Mutex
	expected map[ident.ID][]*expectation
	self     *client.Client

	credMu   sync.Mutex
	credPath string                 // the directory of processes' credentials, once made
	creds    map[*procCred]struct{} // those of running processes

	stopOnce sync.Once
	done     chan struct{} // closed when Stop has finished
	stopReq  chan struct{} // closed when a client asked the server to stop
	reqOnce  sync.Once
}

// Start binds, joins and begins serving. The returned server runs until Stop.
func Start(cfg Config) (s *Server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := closeOnExecInherited(); err != nil {
		cfg.Logger.Warn("could not mark inherited descriptors close-on-exec: processes may inherit them", "err", err)
	}
	if cfg.Timing == "" {
		cfg.Timing = cluster.LAN
	}
	ip, port, err := bindAddr(cfg.Addr, cfg.Iface)
	if err != nil {
		return nil, err
	}
	s = &Server{
		cfg: cfg, id: ident.NewID(), started: time.Now(),
		conns: map[net.Conn]connAuth{}, creds: map[*procCred]struct{}{}, expected: map[ident.ID][]*expectation{}, done: make(chan struct{}), stopReq: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if cfg.VarDir != "" {
		if s.lock, err = lockVar(cfg.VarDir); err != nil {
			return s, err
		}
	}
	if s.revoked, err = revocation.Open(cfg.VarDir); err != nil {
		return s, err
	}
	if s.yard, err = graveyard.Open(cfg.VarDir, cfg.Graveyard); err != nil {
		return s, err
	}
	if cfg.Audit != "" {
		if s.audit, err = oplog.OpenAudit(cfg.Audit); err != nil {
			return s, err
		}
	}
	var ringWarning string
	if s.ring, ringWarning, err = security.OpenRing(cfg.VarDir, cfg.Key); err != nil {
		return s, err
	}
	fsRoot := "/"
	if cfg.FSRoot != "" {
		fsRoot = cfg.FSRoot
	}
	if s.files, err = os.OpenRoot(fsRoot); err != nil {
		return s, fmt.Errorf("-fs-root: %w", err)
	}
	bindIP := ip
	if cfg.Bind != "" {
		if bindIP = net.ParseIP(cfg.Bind); bindIP == nil {
			return s, fmt.Errorf("-bind %q: not an IP address", cfg.Bind)
		}
	}
	ln, udp, err := listen(bindIP, port)
	if err != nil {
		return s, err
	}
	s.ln = ln
	if cfg.Metrics != "" {
		if err := s.listenMetrics(); err != nil {
			udp.Close()
			return s, err
		}
	}
	adv := &net.TCPAddr{IP: ip, Port: ln.Addr().(*net.TCPAddr).Port}
	s.url = ident.URL{Addr: adv.String(), PID: os.Getpid(), ID: s.id}
	s.log = cfg.Logger.With("server", s.id.String())
	s.ops = oplog.New(s.log, s.audit)
	s.revoked.Watch(s.onRevoked)
	s.tree = anchor.NewTree(s.id)
	binDir := ""
	if cfg.VarDir != "" {
		binDir = filepath.Join(cfg.VarDir, "bin")
	}
	s.bins = binstore.Open(binDir)
	if w := unkeyedWarning(s.ring != nil, ln.Addr().(*net.TCPAddr)); w != "" {
		s.log.Warn(w)
	}
	if ringWarning != "" {
		s.log.Warn(ringWarning)
	}

	if cfg.Docker {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.docker, err = docker.NewEngine(ctx)
		cancel()
		if err != nil {
			return s, fmt.Errorf("-docker: %w", err)
		}
	}

	gossipKeys, wanKeys := s.gossipKeys()
	s.cluster, err = cluster.New(cluster.Config{
		ID: s.id, Advertise: adv, PID: os.Getpid(), Timing: cfg.Timing, Labels: cfg.Labels, DC: cfg.DC,
		GossipKeys: gossipKeys, WANGossipKeys: wanKeys, UDP: udp, Logger: s.log, OnEvent: s.onMember,
		Shared: sharedRevocations{s},
		DialStream: func(ctx context.Context, addr string) (net.Conn, error) {
			return wire.Dial(ctx, addr, wire.KindGossip, 0, s.ring.Auth())
		},
		DialWANStream: func(ctx context.Context, addr string) (net.Conn, error) {
			return wire.Dial(ctx, addr, wire.KindGossipWAN, 0, s.ring.Auth())
		},
		DialWatch: func(ctx context.Context, addr string, id ident.ID) (net.Conn, error) {
			return wire.Dial(ctx, addr, wire.KindWatch, id, s.ring.Auth())
		},
	})
	if err != nil {
		udp.Close()
		return s, err
	}

	if s.ring != nil {
		s.ring.Watch(s.onRingChange)
	}
	s.rpcLn = newConnListener(adv)
	s.rpc = grpc.NewServer(
		grpc.Creds(identityCreds{}),
		grpc.ConnectionTimeout(wire.HandshakeTimeout),
		grpc.InitialWindowSize(4<<20), // as the client's: see client/conn.go
		grpc.InitialConnWindowSize(4<<20),
		grpc.ChainUnaryInterceptor(s.unaryOp),
		grpc.ChainStreamInterceptor(s.streamOp),
	)
	api.RegisterServerServer(s.rpc, &serverService{s: s})
	api.RegisterAnchorServer(s.rpc, &anchorService{s: s})
	api.RegisterProcServer(s.rpc, &procService{s: s})
	api.RegisterChanServer(s.rpc, &chanService{s: s})
	api.RegisterNameserverServer(s.rpc, &dnsService{s: s})
	api.RegisterDockerServer(s.rpc, &dockerService{s: s})
	api.RegisterDirsServer(s.rpc, &dirsService{s: s})
	api.RegisterBinaryServer(s.rpc, &binaryService{s: s})
	s.goFunc(func() {
		if err := s.rpc.Serve(s.rpcLn); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("rpc serving stopped", "err", err)
		}
	})
	s.goFunc(s.acceptLoop)
	if s.metricsEP != nil {
		s.goFunc(func() {
			if err := s.metricsEP.Serve(); err != nil {
				s.log.Error("metrics serving stopped", "err", err)
			}
		})
		s.log.Info("serving metrics", "addr", s.metricsEP.Addr().String(), "path", "/metrics")
	}

	for _, j := range cfg.Join {
		u, err := ident.ParseURL(j)
		if err != nil {
			return s, fmt.Errorf("-j: %w", err)
		}
		s.cluster.JoinRetry(u.Addr)
	}
	if cfg.Discover != "" {
		dc := discover.Config{Group: cfg.Discover, LocalIP: adv.IP, Logger: s.log}
		if cfg.Iface != "" {
			if dc.Iface, err = net.InterfaceByName(cfg.Iface); err != nil {
				return s, fmt.Errorf("-if %s: %w", cfg.Iface, err)
			}
		}
		if k := s.ring.Use(); k != nil {
			dc.Key = k.DiscoveryKey() // the key in use at start: discovery does not follow a rotation
		}
		s.disc, err = discover.Serve(s.ctx, dc, s.url.String(), s.discovered)
		if err != nil {
			return s, fmt.Errorf("-discover %s: %w", cfg.Discover, err)
		}
	}
	s.log.Info("serving", "url", s.url.String(), "keyed", s.ring != nil, "timing", string(cfg.Timing))
	return s, nil
}

// discovered joins a server heard of by multicast unless it is a member.
func (s *Server) discovered(raw string) {
	u, err := ident.ParseURL(raw)
	if err != nil || u.ID == 0 {
		s.log.Warn("ignoring a malformed discovery announcement", "url", raw)
		return
	}
	if _, ok := s.cluster.Lookup(u.ID); ok {
		return
	}
	if !s.joins.admit(u.ID, time.Now()) {
		return // being joined, joined a moment ago, or too many at once
	}
	if !s.goFunc(func() { // refused once stopping: then there is nothing to join for
		defer s.joins.done(u.ID)
		if err := s.cluster.Join(u.Addr); err != nil {
			s.log.Warn("joining a discovered server", "url", raw, "err", err)
		}
	}) {
		s.joins.done(u.ID)
	}
}

// ID returns the server's ID.
func (s *Server) ID() ident.ID { return s.id }

// URL returns the server's circuit URL.
func (s *Server) URL() ident.URL { return s.url }

// JoinCluster joins the cluster of the server at addr (host:port).
func (s *Server) JoinCluster(addr string) error { return s.cluster.Join(addr) }

// MetricsAddr is the address the metrics endpoint is bound to, nil
// without Config.Metrics.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsEP == nil {
		return nil
	}
	return s.metricsEP.Addr()
}

// listenMetrics makes the server's metrics and binds their endpoint; the
// scrape-time metrics read the cluster and the tree, which exist by the
// time the endpoint serves.
func (s *Server) listenMetrics() error {
	set, err := metrics.New(metrics.Sources{
		Members: func() (alive, suspect, failed int) {
			st := s.cluster.States()
			return st.Alive, st.Suspect, st.Failed
		},
		Elements: func() map[string]int {
			kinds := map[string]int{}
			for _, e := range s.tree.Elements() {
				if e.Kind != "" {
					kinds[string(e.Kind)]++
				}
			}
			return kinds
		},
	})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	ep, err := metrics.Listen(s.ctx, s.cfg.Metrics, set, s.cfg.Logger)
	if err != nil {
		return err
	}
	s.metrics, s.metricsEP = set, ep
	return nil
}

// Members returns the servers this server sees.
func (s *Server) Members() []cluster.Member { return s.cluster.Members() }

// StopRequested is closed when a client asked the server to stop.
func (s *Server) StopRequested() <-chan struct{} { return s.stopReq }

// Done is closed once Stop has finished.
func (s *Server) Done() <-chan struct{} { return s.done }

// goFunc runs f in a goroutine that Stop waits for, and tells whether it
// did: once Stop has canceled the server's context it refuses, and the
// caller cleans up what f would have taken over. The check and the Add are
// made under s.mu, which Stop holds while it cancels, so no Add can follow
// Stop's Wait.
func (s *Server) goFunc(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.wg.Go(f)
	return true
}

// refuseWork cancels the server's context under s.mu: from here goFunc and
// track refuse (see goFunc). It is Stop's first step after leaving the
// cluster.
func (s *Server) refuseWork() {
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
}

// Stop leaves the cluster, closes everything and waits for every goroutine.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		defer close(s.done)
		if s.cluster != nil {
			s.cluster.Leave(2 * time.Second)
		}
		// Processes stop through their reapers, with a grace period.
		s.refuseWork()
		s.scrubElements()
		if s.disc != nil {
			s.disc.Close()
		}
		if s.ln != nil {
			s.ln.Close()
		}
		if s.metricsEP != nil {
			if err := s.metricsEP.Close(); err != nil {
				s.cfg.Logger.Warn("stopping metrics", "err", err)
			}
		}
		if s.rpc != nil {
			stopped := make(chan struct{})
			go func() { s.rpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(time.Second):
				s.closeConns()
				s.rpc.Stop()
				<-stopped
			}
		}
		s.expectMu.Lock()
		self := s.self
		s.self = nil
		s.expectMu.Unlock()
		if self != nil {
			self.Close()
		}
		s.closeConns()
		s.wg.Wait()
		s.removeCredDir()
		if s.docker != nil {
			s.docker.Close()
		}
		if s.bins != nil {
			s.bins.Close()
		}
		if s.log != nil {
			s.log.Info("stopped", "ops", s.ops.Last())
		}
		if s.yard != nil {
			s.yard.Close()
		}
		if s.audit != nil {
			if err := s.audit.Close(); err != nil {
				s.cfg.Logger.Error("closing the audit file", "err", err)
			}
		}
		if s.lock != nil {
			s.lock.Close()
		}
		if s.files != nil {
			s.files.Close()
		}
	})
	<-s.done
}

// requestStop stops the server on a client's request. Stop runs in a
// goroutine of its own, not one the server tracks, since Stop waits for
// those; the RPC's answer goes out before the connections close because
// Stop leaves the cluster first and then stops gRPC gracefully.
// scrubElements aborts the elements other than processes: waiters on
// channels fail, nameservers free their ports.
func (s *Server) scrubElements() {
	if s.tree == nil {
		return
	}
	for _, e := range s.tree.Elements() {
		elem, ok := s.tree.Get(anchor.Split(e.Path)[1:])
		if _, reaped := elem.(interface{ Stop(time.Duration) }); !ok || reaped {
			continue // processes and containers stop through their reapers
		}
		if sc, ok := elem.(scrubber); ok {
			sc.Scrub()
		}
	}
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *Server) requestStop() {
	s.reqOnce.Do(func() {
		close(s.stopReq)
		go s.Stop()
	})
}

// unkeyedWarning is what a server without a key says once at start when it
// is bound to more than loopback: the address it is bound to (not the one
// it advertises, which may be loopback while it binds every address), and
// what to do. Empty when keyed or bound to loopback only.
func unkeyedWarning(keyed bool, bound *net.TCPAddr) string {
	if keyed || bound.IP.IsLoopback() {
		return ""
	}
	where := bound.String()
	if bound.IP.IsUnspecified() {
		where += " (every address of this host)"
	}
	return "NO KEY: this server is bound to " + where + " with no cluster key: its traffic is plaintext and unauthenticated, and anyone who reaches that address runs commands on this host. Make a key with circuit keygen and give it with -hmac FILE; -require-key refuses to start without one"
}
