package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/discover"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/kind"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/wire"
)

// DefaultDialTimeout bounds Connect when its context has no deadline.
const DefaultDialTimeout = 3 * time.Second

// Options says how to reach a cluster.
type Options struct {
	// Addr is the dial-in server: a circuit URL or host:port.
	Addr string
	// Discover, when Addr is empty, is a multicast group:port on which to
	// find a server (servers started with -discover).
	Discover string
	// Key is the cluster key (the contents of the key file); nil for none.
	Key []byte
	// CredFile, instead of Key, is the path of a credential file: what a
	// process started with Cmd.Cred (a Spawn worker) finds in
	// $CIRCUIT_CRED. The file is read again when its credential is past
	// half its life, so a credential renewed in place is picked up.
	CredFile string
	// RelayOnly sends every connection through the dial-in server, even
	// the stream connections that otherwise go straight to a server this
	// client can reach (see Client.dialServer).
	RelayOnly bool
}

// Client is a connection to a circuit cluster. It is the root anchor (/) of
// the cluster's namespace. It is safe for concurrent use.
type Client struct {
	dialin string        // host:port
	auth   security.Auth // the key, a credential, or nil for neither

	mu     sync.Mutex
	conns  map[ident.ID]*serverConn
	addrs  map[ident.ID]string // for direct stream dials (direct.go)
	relay  bool                // Options.RelayOnly
	chans  chanStreams         // idle channel streams (chanstream.go)
	closed bool
}

// Connect dials into a cluster. It fails within the context's deadline, or
// DefaultDialTimeout, saying what it tried.
func Connect(ctx context.Context, opt Options) (*Client, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultDialTimeout)
		defer cancel()
	}
	var key *security.Key
	var auth security.Auth
	switch {
	case opt.Key != nil && opt.CredFile != "":
		return nil, errors.New("give the cluster key or a credential, not both")
	case opt.Key != nil:
		var err error
		if key, err = security.Parse(opt.Key); err != nil {
			return nil, fmt.Errorf("cluster key: %w", err)
		}
		auth = key
	case opt.CredFile != "":
		cred, err := security.LoadCredentialFile(opt.CredFile)
		if err != nil {
			return nil, err
		}
		auth = cred
	}
	addr := opt.Addr
	if addr == "" {
		if opt.Discover == "" {
			return nil, errors.New("no dial-in server given")
		}
		if opt.CredFile != "" {
			return nil, errors.New("discovery needs the cluster key, which signs its announcements: with a credential, give a server's address")
		}
		dc := discover.Config{Group: opt.Discover}
		if key != nil {
			dc.Key = key.DiscoveryKey()
		}
		found, err := discover.Find(ctx, dc)
		if err != nil {
			return nil, err
		}
		addr = found
	}
	u, err := ident.ParseURL(addr)
	if err != nil {
		return nil, err
	}
	c := &Client{dialin: u.Addr, auth: auth, conns: map[ident.ID]*serverConn{}, addrs: map[ident.ID]string{}, relay: opt.RelayOnly}
	first, err := wire.Dial(ctx, u.Addr, wire.KindRPC, 0, auth)
	if err != nil {
		var r *wire.Refusal
		switch {
		case errors.As(err, &r) && r.IsAuth(), errors.Is(err, security.ErrKeyMismatch):
			return nil, &AuthError{Addr: u.Addr, Err: err}
		case ctx.Err() != nil:
			return nil, &DialinLostError{Addr: u.Addr, Err: fmt.Errorf("no answer within the dial timeout: %v", err)}
		}
		return nil, &DialinLostError{Addr: u.Addr, Err: errors.New(dialErrorText(err))}
	}
	sc, err := newServerConn(u.Addr, 0, func(ctx context.Context) (net.Conn, error) {
		return wire.Dial(ctx, u.Addr, wire.KindRPC, 0, auth)
	}, first)
	if err != nil {
		first.Close()
		return nil, err
	}
	c.conns[0] = sc
	return c, nil
}

// Dial connects to the circuit server at addr (a circuit URL or host:port),
// with authkey the cluster key or nil. As the seeds' API does, it panics if
// the server cannot be reached; the panic value is an error.
func Dial(addr string, authkey []byte) *Client {
	c, err := Connect(context.Background(), Options{Addr: addr, Key: authkey})
	if err != nil {
		panic(err)
	}
	return c
}

// DialDiscover finds a circuit server by UDP multicast on the group
// multicast (group:port) and connects to it. It panics on failure.
func DialDiscover(multicast string, authkey []byte) *Client {
	c, err := Connect(context.Background(), Options{Discover: multicast, Key: authkey})
	if err != nil {
		panic(err)
	}
	return c
}

// Close closes every connection of the client.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.closeChanStreams()
	var errs []error
	for _, sc := range c.conns {
		errs = append(errs, sc.close())
	}
	return errors.Join(errs...)
}

// DialinAddr is the host:port of the dial-in server.
func (c *Client) DialinAddr() string { return c.dialin }

// Member is a server of the cluster.
type Member struct {
	ID   string // X and 16 hex digits; the server's anchor is "/"+ID
	Addr string // host:port
	URL  string // circuit://host:port/pid/id
	PID  int
	// Labels are the server's labels (circuit start -label role=db), nil
	// when it has none. Select chooses servers by them.
	Labels map[string]string `json:",omitempty"`
	// DC is the server's datacenter (circuit start -dc), "" for none.
	DC string `json:",omitempty"`
}

func fromMember(m *api.Member) Member {
	return Member{ID: m.GetId(), Addr: m.GetAddr(), URL: m.GetUrl(), PID: int(m.GetPid()), Labels: m.GetLabels(), DC: m.GetDc()}
}

// Members lists the servers the dial-in server sees, sorted by ID.
func (c *Client) Members(ctx context.Context) ([]Member, error) { return c.members(ctx) }

func (c *Client) members(ctx context.Context) ([]Member, error) {
	sc, err := c.conn(0)
	if err != nil {
		return nil, err
	}
	r, err := sc.api.Members(ctx, &api.MembersRequest{})
	if err != nil {
		return nil, c.wrap(ctx, sc, err)
	}
	out := make([]Member, 0, len(r.GetMembers()))
	for _, m := range r.GetMembers() {
		out = append(out, fromMember(m))
	}
	c.learn(out)
	return out, nil
}

// ServerInfo is what peek shows of a server.
type ServerInfo struct {
	ID        string
	URL       string
	Addr      string
	PID       int
	Started   time.Time
	Version   string
	GoVersion string
	Keyed     bool
	Labels    map[string]string `json:",omitempty"`
	DC        string            `json:",omitempty"`
	Members   []Member
	Elements  int
}

// server returns the connection to the server with the given ID.
func (c *Client) server(id string) (*serverConn, error) {
	sid, err := ident.ParseID(id)
	if err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	return c.conn(sid)
}

// ServerInfo describes the server with the given ID.
func (c *Client) ServerInfo(ctx context.Context, id string) (ServerInfo, error) {
	sc, err := c.server(id)
	if err != nil {
		return ServerInfo{}, err
	}
	r, err := sc.api.Info(ctx, &api.InfoRequest{})
	if err != nil {
		return ServerInfo{}, c.wrap(ctx, sc, err)
	}
	return fromInfoReply(r), nil
}

func fromInfoReply(r *api.InfoReply) ServerInfo {
	info := ServerInfo{
		ID: r.GetId(), URL: r.GetUrl(), Addr: r.GetAddr(), PID: int(r.GetPid()),
		Started: time.Unix(0, r.GetStartedUnixNano()), Version: r.GetVersion(), GoVersion: r.GetGoVersion(),
		Keyed: r.GetKeyed(), Elements: int(r.GetElements()), Labels: r.GetLabels(), DC: r.GetDc(),
	}
	for _, m := range r.GetMembers() {
		info.Members = append(info.Members, fromMember(m))
	}
	return info
}

func serverState(r *api.PeekReply) any {
	if st := r.GetServer(); st != nil {
		return fromInfoReply(st)
	}
	return nil
}

func serverHandle(c *Client, path string) any { return &Server{c: c, id: Split(path)[0]} }

// Stack returns the goroutine stacks of the server with the given ID.
func (c *Client) Stack(ctx context.Context, id string) ([]byte, error) {
	sc, err := c.server(id)
	if err != nil {
		return nil, err
	}
	r, err := sc.api.Stack(ctx, &api.StackRequest{})
	if err != nil {
		return nil, c.wrap(ctx, sc, err)
	}
	return r.GetStacks(), nil
}

// StopServer makes the server with the given ID leave the cluster and exit.
func (c *Client) StopServer(ctx context.Context, id string) error {
	sc, err := c.server(id)
	if err != nil {
		return err
	}
	_, err = sc.api.Stop(ctx, &api.StopRequest{})
	return c.wrap(ctx, sc, err)
}

// JoinCluster asks the server with the given ID to join the cluster of the
// server at url, merging the two clusters.
func (c *Client) JoinCluster(ctx context.Context, id, url string) error {
	sc, err := c.server(id)
	if err != nil {
		return err
	}
	_, err = sc.api.Join(ctx, &api.JoinRequest{Url: url})
	return c.wrap(ctx, sc, err)
}

// JoinDialin asks the dial-in server to join the cluster of the server at
// url.
func (c *Client) JoinDialin(ctx context.Context, url string) error {
	sc, err := c.conn(0)
	if err != nil {
		return err
	}
	_, err = sc.api.Join(ctx, &api.JoinRequest{Url: url})
	return c.wrap(ctx, sc, err)
}

// Entry is one anchor in a listing.
type Entry struct {
	Path string
	// Kind is the element's kind ("server", "proc", "chan", ...), "" for
	// an anchor with no element, or in the anchor file system KindDir or
	// KindWorker.
	Kind string
	// Anchor is, for a worker's file in the anchor file system, the path of
	// its process element (/Xid/R...).
	Anchor string
	// Labels are a server's labels, and DC its datacenter, in a listing
	// of "/".
	Labels map[string]string
	DC     string
}

// List lists the namespace at path, as `circuit ls` does: "/" lists the
// servers; "/Xid/a" lists the anchors under /Xid/a; a trailing "/..." lists
// every descendant. A path whose first component is not a server ID is in
// the anchor file system (package doc): "/firehose/clients" lists that
// directory, its files and subdirectories, and "/..." includes the whole
// anchor file system. The result is sorted by path. A listing that asks
// every server returns what it has with an *IncompleteError when some did
// not answer.
func (c *Client) List(ctx context.Context, path string) ([]Entry, error) {
	if anchorfs.InFS(path) {
		q, err := anchorfs.Parse(path)
		if err != nil {
			return nil, fault.New(fault.BadRequest, err.Error())
		}
		return c.listDirs(ctx, q)
	}
	p, err := anchor.Parse(path)
	if err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	if p.Server != 0 {
		return c.listServer(ctx, p.Server, p.String())
	}
	members, err := c.members(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(members))
	for _, m := range members {
		out = append(out, Entry{Path: "/" + m.ID, Kind: string(kind.Server), Labels: m.Labels, DC: m.DC})
	}
	if !p.Recursive {
		return out, nil
	}
	// Every server's subtree, in parallel, and the anchor file system.
	var mu sync.Mutex
	err = c.eachMember(ctx, func(ctx context.Context, id ident.ID) error {
		entries, err := c.listServer(ctx, id, "/"+id.String()+"/...")
		mu.Lock()
		defer mu.Unlock()
		out = append(out, entries...)
		return err
	})
	var incomplete *IncompleteError
	if err != nil && !errors.As(err, &incomplete) {
		return nil, err
	}
	fs, ferr := c.listDirs(ctx, anchorfs.Query{Recursive: true})
	if ferr != nil && !errors.As(ferr, &incomplete) {
		return nil, ferr
	}
	out = append(out, fs...)
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	if err == nil {
		err = ferr
	}
	return out, err
}

func (c *Client) listServer(ctx context.Context, id ident.ID, path string) ([]Entry, error) {
	sc, err := c.conn(id)
	if err != nil {
		return nil, err
	}
	r, err := sc.api.List(ctx, &api.ListRequest{Path: path})
	if err != nil {
		return nil, c.wrap(ctx, sc, err)
	}
	out := make([]Entry, 0, len(r.GetEntries()))
	for _, e := range r.GetEntries() {
		out = append(out, Entry{Path: e.GetPath(), Kind: e.GetKind()})
	}
	return out, nil
}
