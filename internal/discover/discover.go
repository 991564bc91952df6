package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Config says where and how to discover.
type Config struct {
	Group   string         // "228.8.8.8:7711": multicast IPv4 group and UDP port
	Iface   *net.Interface // interface to send and join on; nil = choose the interface that owns LocalIP, else the system default
	LocalIP net.IP         // the server's bound address, used to choose the interface when Iface is nil (127.0.0.1 → loopback)
	Key     []byte         // HMAC key; nil = unauthenticated
	TTL     int            // 0 means 1
	Logger  *slog.Logger   // nil = discard
}

// ErrNoAnswer is wrapped by the error Find returns when no server answered
// in time.
var ErrNoAnswer = errors.New("no circuit server answered")

const (
	maxAnnounceGap = 30 * time.Second
	foundEvery     = time.Second           // a URL is reported at most this often
	maxSeen        = 1024                  // bound on the per-URL rate-limit table
	replyBurst     = 16                    // query replies allowed in a burst ...
	replyEvery     = 50 * time.Millisecond // ... then one per this interval
)

// Find's query schedule, relative to its start.
var querySchedule = []time.Duration{0, 300 * time.Millisecond, time.Second}

// setup is a validated Config.
type setup struct {
	group  *net.UDPAddr
	iface  *net.Interface // nil: system default
	key    []byte
	ttl    int
	logger *slog.Logger
}

func (s *setup) ifaceName() string {
	if s.iface == nil {
		return "default"
	}
	return s.iface.Name
}

// ParseGroup parses an IPv4 multicast group with a UDP port, such as
// "228.8.8.8:7711".
func ParseGroup(s string) (*net.UDPAddr, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("discover: group %q: want IPv4 multicast address and port: %w", s, err)
	}
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return nil, fmt.Errorf("discover: %s is not an IPv4 address", s)
	}
	if !ip.IsMulticast() {
		return nil, fmt.Errorf("discover: %s is not a multicast address", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return nil, fmt.Errorf("discover: %s: bad port %q", s, port)
	}
	return &net.UDPAddr{IP: ip, Port: p}, nil
}

func (c Config) setup() (*setup, error) {
	group, err := ParseGroup(c.Group)
	if err != nil {
		return nil, err
	}
	s := &setup{group: group, iface: c.Iface, key: c.Key, ttl: c.TTL, logger: c.Logger}
	if s.ttl == 0 {
		s.ttl = 1
	}
	if s.ttl < 0 || s.ttl > 255 {
		return nil, fmt.Errorf("discover: TTL %d out of range 1..255", c.TTL)
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.iface == nil && c.LocalIP != nil && !c.LocalIP.IsUnspecified() {
		if s.iface, err = ifaceOwning(c.LocalIP); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ifaceOwning returns the interface that has ip as one of its addresses, or
// for a loopback ip the first loopback interface. It returns nil (system
// default) when no interface matches.
func ifaceOwning(ip net.IP) (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("discover: listing interfaces to find the one owning %v: %w", ip, err)
	}
	var loop *net.Interface
	for i := range ifs {
		ifi := &ifs[i]
		if loop == nil && ifi.Flags&net.FlagLoopback != 0 {
			loop = ifi
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return ifi, nil
			}
		}
	}
	if ip.IsLoopback() {
		return loop, nil
	}
	return nil, nil
}

// listen opens a UDP socket on addr with the multicast options of s set.
// With reuse, several sockets on the host may share the port.
func (s *setup) listen(ctx context.Context, addr string, reuse bool) (*ipv4.PacketConn, error) {
	var lc net.ListenConfig
	if reuse {
		lc.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
				}
			})
			if err == nil {
				err = serr
			}
			return err
		}
	}
	c, err := lc.ListenPacket(ctx, "udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("discover: listening on udp4 %s: %w", addr, err)
	}
	pc := ipv4.NewPacketConn(c)
	if err := s.configure(pc); err != nil {
		c.Close()
		return nil, err
	}
	return pc, nil
}

func (s *setup) configure(pc *ipv4.PacketConn) error {
	if s.iface != nil {
		if err := pc.SetMulticastInterface(s.iface); err != nil {
			return fmt.Errorf("discover: setting multicast interface %s: %w", s.iface.Name, err)
		}
	}
	if err := pc.SetMulticastTTL(s.ttl); err != nil {
		return fmt.Errorf("discover: setting multicast TTL %d: %w", s.ttl, err)
	}
	if err := pc.SetMulticastLoopback(true); err != nil {
		return fmt.Errorf("discover: enabling multicast loopback: %w", err)
	}
	return nil
}

// Node is a running discovery server, started by Serve.
type Node struct {
	s        *setup
	pc       *ipv4.PacketConn
	self     string
	found    func(string)
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeErr error
	rejected atomic.Int64 // invalid packets received, for tests
}

// Serve joins the group in cfg, announces self (the server's URL) right away
// and then at growing intervals up to 30s, answers queries with a unicast
// announcement, and calls found with the URL of every other server it hears
// of, at most once per second per URL. found is called from a single
// goroutine; it should not block for long. The node runs until ctx is done
// or Close is called.
func Serve(ctx context.Context, cfg Config, self string, found func(url string)) (*Node, error) {
	s, err := cfg.setup()
	if err != nil {
		return nil, err
	}
	if _, err := encode(newPacket(typeAnnounce, self), s.key); err != nil {
		return nil, err
	}
	pc, err := s.listen(ctx, net.JoinHostPort("0.0.0.0", strconv.Itoa(s.group.Port)), true)
	if err != nil {
		return nil, err
	}
	if err := pc.JoinGroup(s.iface, s.group); err != nil {
		pc.Close()
		return nil, fmt.Errorf("discover: joining %v on interface %s: %w", s.group, s.ifaceName(), err)
	}
	// The destination address tells group traffic from stray unicast.
	if err := pc.SetControlMessage(ipv4.FlagDst, true); err != nil {
		s.logger.Debug("discover: cannot read packet destinations", "err", err)
	}
	if found == nil {
		found = func(string) {}
	}
	ctx, cancel := context.WithCancel(ctx)
	n := &Node{s: s, pc: pc, self: self, found: found, cancel: cancel}
	n.send("announce", s.group)
	s.logger.Info("discover: serving", "group", s.group, "interface", s.ifaceName(), "self", self)
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		<-ctx.Done()
		n.closeErr = pc.Close()
	}()
	go func() {
		defer n.wg.Done()
		n.announceLoop(ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.receiveLoop(ctx)
	}()
	return n, nil
}

// Close stops the node and waits for its goroutines. It is idempotent and
// returns the error of closing the socket.
func (n *Node) Close() error {
	n.cancel()
	n.wg.Wait()
	return n.closeErr
}

// send sends an announcement of self, with a fresh nonce, to dst (the group
// or the source of a query); why is for the log.
func (n *Node) send(why string, dst net.Addr) {
	b, err := encode(newPacket(typeAnnounce, n.self), n.s.key)
	if err == nil {
		_, err = n.pc.WriteTo(b, nil, dst)
	}
	if err != nil {
		n.s.logger.Warn("discover: sending announcement", "why", why, "to", dst, "err", err)
	}
}

func (n *Node) announceLoop(ctx context.Context) {
	gap := time.Second
	t := time.NewTimer(gap)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.send("re-announce", n.s.group)
		gap = min(2*gap, maxAnnounceGap)
		t.Reset(gap)
	}
}

func (n *Node) receiveLoop(ctx context.Context) {
	buf := make([]byte, maxPacket+1)
	seen := make(map[string]time.Time)
	tokens, refilled := replyBurst, time.Now()
	for {
		nr, cm, src, err := n.pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			n.s.logger.Warn("discover: receiving", "err", err)
			if !pause(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		if cm != nil && cm.Dst != nil && !cm.Dst.Equal(n.s.group.IP) {
			continue // not sent to the group
		}
		p, err := decode(buf[:nr], n.s.key)
		if err != nil {
			n.rejected.Add(1)
			n.s.logger.Debug("discover: dropping packet", "from", src, "err", err)
			continue
		}
		now := time.Now()
		switch p.Type {
		case typeQuery:
			if add := now.Sub(refilled) / replyEvery; add > 0 {
				tokens = int(min(replyBurst, int64(tokens)+int64(add)))
				refilled = refilled.Add(add * replyEvery)
			}
			if tokens == 0 {
				n.s.logger.Debug("discover: too many queries, not answering", "from", src)
				continue
			}
			tokens--
			n.send("answer query", src)
		case typeAnnounce:
			if p.URL == n.self || now.Sub(seen[p.URL]) < foundEvery {
				continue
			}
			if len(seen) >= maxSeen {
				for u, t := range seen {
					if now.Sub(t) >= foundEvery {
						delete(seen, u)
					}
				}
			}
			if len(seen) < maxSeen {
				seen[p.URL] = now
			}
			n.s.logger.Debug("discover: found server", "url", p.URL, "from", src)
			n.found(p.URL)
		}
	}
}

// pause waits for d or until ctx is done, reporting whether ctx is still live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Find asks the group in cfg for a server and returns the URL of the first
// one that answers. Without a deadline in ctx it waits at most 3s.
func Find(ctx context.Context, cfg Config) (string, error) {
	s, err := cfg.setup()
	if err != nil {
		return "", err
	}
	start := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = start.Add(3 * time.Second)
	}
	pc, err := s.listen(ctx, "0.0.0.0:0", false)
	if err != nil {
		return "", err
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Now()) })
	defer stop()

	noAnswer := func() error {
		return fmt.Errorf("%w on multicast %v within %v (interface %s)",
			ErrNoAnswer, s.group, roundDur(deadline.Sub(start)), s.ifaceName())
	}
	buf := make([]byte, maxPacket+1)
	next := 0 // index in querySchedule of the next query
	for {
		for next < len(querySchedule) && time.Since(start) >= querySchedule[next] {
			q, err := encode(newPacket(typeQuery, ""), s.key)
			if err != nil {
				return "", err
			}
			if _, err := pc.WriteTo(q, nil, s.group); err != nil {
				return "", fmt.Errorf("discover: sending query to %v on interface %s: %w", s.group, s.ifaceName(), err)
			}
			next++
		}
		wake := deadline
		if next < len(querySchedule) {
			if t := start.Add(querySchedule[next]); t.Before(wake) {
				wake = t
			}
		}
		if err := pc.SetReadDeadline(wake); err != nil {
			return "", fmt.Errorf("discover: setting read deadline: %w", err)
		}
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return "", noAnswer()
			}
			return "", fmt.Errorf("discover: finding a server on %v: %w", s.group, err)
		}
		nr, _, src, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return "", fmt.Errorf("discover: receiving answers on %v: %w", s.group, err)
			}
			if !time.Now().Before(deadline) {
				return "", noAnswer()
			}
			continue
		}
		p, err := decode(buf[:nr], s.key)
		if err != nil {
			s.logger.Debug("discover: dropping packet", "from", src, "err", err)
			continue
		}
		if p.Type == typeAnnounce {
			s.logger.Debug("discover: found server", "url", p.URL, "from", src)
			return p.URL, nil
		}
	}
}

func roundDur(d time.Duration) time.Duration {
	if r := d.Round(10 * time.Millisecond); r > 0 {
		return r
	}
	return d
}
