package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/element/stdio"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/footprint"
	"github.com/circuit-project/circuit/internal/metrics"
	ops "github.com/circuit-project/circuit/internal/op"
	"github.com/circuit-project/circuit/internal/oplog"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/wire"
)

func (s *Server) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			s.log.Warn("accept", "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond): // e.g. out of file descriptors
			}
			continue
		}
		release, ok := s.unauth.admit(c.RemoteAddr())
		if !ok {
			s.refused(c, fmt.Sprintf("more than %d connections from one address are not yet authenticated", unauthPerPeer))
			c.Close()
			continue
		}
		if !s.track(c) {
			release()
			c.Close()
			return
		}
		if !s.goFunc(func() { s.serveConn(c, release) }) { // stopping
			release()
			c.Close()
			s.untrack(c)
			return
		}
	}
}

// track records a connection so that Stop closes it; false once stopping.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.conns[c] = connAuth{}
	return true
}

// connAuth is how a client's connection authenticated: the key its
// preamble was made under and the claims of its credential, if any.
type connAuth struct {
	key    *security.Key
	claims *security.Claims
}

// authenticated records how a tracked client connection (RPC or stream)
// authenticated, so that revoking its credential (onRevoked) or removing its
// key (onRingChange) closes it. Connections between servers (gossip,
// watches) are not recorded: a watch's end reports a crash.
func (s *Server) authenticated(c net.Conn, a connAuth) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.conns[c]; ok {
		if a.claims == nil {
			a.claims = old.claims
		}
		if a.key == nil {
			a.key = old.key
		}
		s.conns[c] = a
	}
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// unauthPerPeer bounds the connections from one address that are not yet
// authenticated: a flood of them from one peer cannot use up this server's
// descriptors, and they each last at most wire.AuthTimeout.
const unauthPerPeer = 64

// unauthLimit counts, per remote IP address, the connections accepted and
// not yet authenticated.
type unauthLimit struct {
	mu sync.Mutex
	n  map[string]int
}

// admit counts a new connection from addr, or refuses it when its address
// already has unauthPerPeer. release, called once the connection is
// authenticated or over (more calls do nothing), uncounts it.
func (l *unauthLimit) admit(addr net.Addr) (release func(), ok bool) {
	ip := addr.String()
	if a, isTCP := addr.(*net.TCPAddr); isTCP {
		ip = a.IP.String()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[string]int{}
	}
	if l.n[ip] >= unauthPerPeer {
		return nil, false
	}
	l.n[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.n[ip]--; l.n[ip] <= 0 {
				delete(l.n, ip)
			}
		})
	}, true
}

// serveConn greets, reads the preamble and hands the connection on.
// Connections that go to gRPC or to membership stay tracked until closed by
// their new owner or by Stop. release uncounts the connection as not yet
// authenticated: it is called once the preamble is checked and TLS done.
func (s *Server) serveConn(c net.Conn, release func()) {
	handedOff := false
	defer release()
	defer func() {
		if !handedOff {
			c.Close()
			s.untrack(c)
		}
	}()
	c.SetDeadline(time.Now().Add(wire.AuthTimeout))
	g := wire.NewGreeting(s.id, s.ring != nil)
	if _, err := c.Write(g.Bytes()); err != nil {
		return
	}
	p, err := wire.ReadPreamble(c)
	if err != nil {
		if errors.Is(err, wire.ErrBadPreamble) {
			s.refused(c, err.Error())
			wire.WriteStatus(c, &wire.Refusal{Code: wire.CodeBadRequest, Msg: err.Error()})
		}
		return
	}
	if r := p.Check(g, s.acceptor()); r != nil {
		s.refused(c, r.Msg)
		wire.WriteStatus(c, r)
		return
	}
	if p.Claims != nil {
		if e, ok := s.revocationOf(p.Claims); ok {
			r := &wire.Refusal{Code: wire.CodeBadKey, Msg: "authentication failed: " + revokedReason(e)}
			s.refused(c, r.Msg)
			wire.WriteStatus(c, r)
			return
		}
	}
	if p.Kind == wire.KindRPC || p.Kind == wire.KindStream {
		s.authenticated(c, connAuth{key: p.Key, claims: p.Claims})
	}
	if p.Target != 0 && p.Target != s.id {
		if p.Kind == wire.KindGossip || p.Kind == wire.KindGossipWAN || p.Kind == wire.KindWatch || p.Hop > 0 {
			wire.WriteStatus(c, &wire.Refusal{Code: wire.CodeUnknownServer, Msg: "server " + p.Target.String() + " is not here (it left or restarted)"})
			return
		}
		footprint.Wake() // forwarding is work
		s.relay(c, p, release)
		return
	}
	if p.Kind == wire.KindGossipWAN && !s.cluster.InDC() {
		msg := "this server is in no datacenter (started without -dc), so it takes no part in the datacenter pool"
		s.refused(c, msg)
		wire.WriteStatus(c, &wire.Refusal{Code: wire.CodeBadRequest, Msg: msg})
		return
	}
	if err := wire.WriteStatus(c, nil); err != nil {
		return
	}
	if s.ring == nil || !p.Kind.TLS() {
		release() // authenticated by the preamble (or never: no key)
	}
	switch p.Kind {
	case wire.KindGossip:
		c.SetDeadline(time.Time{})
		handedOff = true
		s.cluster.HandleStream(&untrackOnClose{Conn: c, s: s})
	case wire.KindGossipWAN:
		c.SetDeadline(time.Time{})
		handedOff = true
		s.cluster.HandleWANStream(&untrackOnClose{Conn: c, s: s})
	case wire.KindWatch:
		// Beats until the watcher closes it or this server stops (Stop
		// closes tracked connections); its end, or silence, is the news.
		c.SetDeadline(time.Time{})
		s.cluster.HandleWatch(c)
	case wire.KindRPC, wire.KindStream:
		footprint.Wake() // a request: all the Ps, if it was idle on one
		conn := c
		who := caller{from: c.RemoteAddr().String()}
		if p.Origin != "" { // a relay's preamble, under the key (or no key at all)
			who.from, who.via = p.Origin, who.from
		}
		if s.ring != nil {
			tc := tls.Server(c, s.ring.ServerTLS(p.Key))
			if err := tc.HandshakeContext(s.ctx); err != nil {
				s.refused(c, "TLS handshake: "+err.Error())
				return
			}
			conn = tc
			release()
			who.keyed = true
			if claims, ok := security.PeerClaims(tc.ConnectionState()); ok {
				who.claims = &claims
				s.authenticated(c, connAuth{claims: &claims}) // revoked: refused by every operation (authorize)
			}
		}
		if p.Kind == wire.KindStream {
			s.serveStream(conn, who)
			conn.Close()
			return
		}
		c.SetDeadline(time.Time{})
		handedOff = true
		s.rpcLn.push(&untrackOnClose{Conn: conn, raw: c, s: s, who: who})
	}
}

// Element streams: the element kinds that carry standard streams.
type (
	outputStreamer interface {
		ClaimOutput(name string) error
		CopyOutput(name string, w io.Writer)
	}
	inputStreamer interface {
		ClaimStdin() error
		CopyStdin(r io.Reader) error
	}
)

// serveStream connects a stream connection to an element's stdin, stdout or
// stderr. The connection's deadline still bounds reading the header.
func (s *Server) serveStream(conn net.Conn, who caller) {
	h, err := wire.ReadStreamHeader(conn)
	if err != nil {
		s.refused(conn, "stream header: "+err.Error())
		if errors.Is(err, wire.ErrBadPreamble) {
			wire.WriteStatus(conn, &wire.Refusal{Code: wire.CodeBadRequest, Msg: err.Error()})
		}
		return
	}
	name := "Stream." + h.Stream
	f := who.fields(h.Path)
	var run *runStart
	switch {
	case h.Stream == "run":
		// Its command comes first: the record names it.
		run = readRunSpec(conn)
		if run.spec != nil {
			f.What = runWhat(run.spec)
		}
	case isFileStream(h.Stream) && h.File != "":
		f.What = map[string]any{"file": h.File}
		if h.Local != "" {
			f.What["local"] = h.Local
		}
	}
	op, err := s.ops.Begin(name, f)
	if err != nil {
		refuseStream(conn, op, fault.New(fault.Precondition, err.Error()))
		return
	}
	if _, ok := ops.Lookup(name); !ok {
		refuseStream(conn, op, fault.Errorf(fault.BadRequest, "no stream %q: the streams are %s", h.Stream, strings.Join(ops.Streams(), ", ")))
		return
	}
	conn = s.metrics.CountStream(conn, h.Stream) // conn itself with metrics off
	if err := s.permit(who, name, h.Path); err != nil {
		refuseStream(conn, op, err)
		return
	}
	if isFileStream(h.Stream) {
		s.serveFiles(conn, h, op)
		return
	}
	if h.Stream == "chan" {
		s.serveChanStream(conn, h.Path, op, who)
		return
	}
	if run != nil {
		s.serveRun(conn, run, h, op, who)
		return
	}
	defer op.End(nil) // a refusal below ends it first: End records once
	refuse := func(err error) { refuseStream(conn, op, err) }
	p, e, err := s.element(h.Path)
	if pe, ok := e.(*procElement); h.Serial != 0 && (err != nil || !ok || pe.serial != h.Serial) {
		// A process removed by Cmd.Scrub at its exit: its output is still
		// there for a while.
		if gone, ok := s.tomb.element(p.String(), h.Serial); ok {
			e, err = gone, nil
		} else if _, exited := s.tomb.get(p.String(), h.Serial); exited && (h.Stream == "stdout" || h.Stream == "stderr") {
			// Removed by Cmd.Scrub once nothing was left to read (its
			// output was empty, or read): what is left is the end.
			endedStream(conn, op)
			return
		} else if err == nil {
			err = fault.New(fault.NotFound, "the process at "+h.Path+" is not the one asked for (it was replaced)")
		}
	}
	if err != nil {
		refuse(err)
		return
	}
	switch h.Stream {
	case "stdout", "stderr":
		out, ok := e.(outputStreamer)
		if !ok {
			refuse(fault.Errorf(fault.BadRequest, "%s holds a %s, which has no %s", h.Path, e.Kind(), h.Stream))
			return
		}
		if err := out.ClaimOutput(h.Stream); err != nil {
			if s.scrubbedAtExit(h.Path, e, h.Serial, err) {
				// Its server removed it, after its exit, between this
				// stream's lookup and its claim: as after the removal,
				// what is left is the end.
				endedStream(conn, op)
				return
			}
			refuse(fault.Errorf(fault.Precondition, "%s of %s: %v", h.Stream, h.Path, err))
			return
		}
		conn.SetDeadline(time.Time{})
		if err := wire.WriteStatus(conn, nil); err != nil {
			out.CopyOutput(h.Stream, io.Discard)
			return
		}
		out.CopyOutput(h.Stream, conn)
	case "stdin":
		in, ok := e.(inputStreamer)
		if !ok {
			refuse(fault.Errorf(fault.BadRequest, "%s holds a %s, which has no stdin", h.Path, e.Kind()))
			return
		}
		if err := in.ClaimStdin(); err != nil {
			refuse(fault.Errorf(fault.Precondition, "stdin of %s: %v", h.Path, err))
			return
		}
		conn.SetDeadline(time.Time{})
		if err := wire.WriteStatus(conn, nil); err != nil {
			in.CopyStdin(eofReader{})
			return
		}
		if err := in.CopyStdin(conn); err != nil {
			s.log.Warn("stdin copy", "path", h.Path, "err", err)
		}
	default:
		refuse(fault.Errorf(fault.BadRequest, "no stream %q: want stdin, stdout or stderr", h.Stream))
	}
}

// endedStream answers a stream of an output that is over: OK, then the
// end at once.
func endedStream(conn net.Conn, op *oplog.Op) {
	op.End(nil)
	conn.SetDeadline(time.Time{})
	wire.WriteStatus(conn, nil)
}

// refuseStream ends a stream's operation with err and tells the client,
// with the wire code of err's class (package fault).
func refuseStream(conn net.Conn, op *oplog.Op, err error) {
	r := fault.Refusal(err)
	op.End(errors.New(r.Msg))
	wire.WriteStatus(conn, r)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// relay connects a client to the member it named and splices the two
// connections. Only members' advertised addresses are ever dialled.
func (s *Server) relay(c net.Conn, p wire.Preamble, release func()) {
	kind, reached := metrics.ForwardRPC, false
	if p.Kind == wire.KindStream {
		kind = metrics.ForwardStream
	}
	defer func() {
		if !reached {
			s.metrics.Forwarded(kind, false)
		}
	}()
	m, ok := s.cluster.Lookup(p.Target)
	if !ok {
		wire.WriteStatus(c, &wire.Refusal{Code: wire.CodeUnknownServer, Msg: "server " + p.Target.String() + " is not a member of this cluster"})
		return
	}
	d := net.Dialer{Timeout: 3 * time.Second}
	up, err := d.DialContext(s.ctx, "tcp", m.Addr)
	if err != nil {
		wire.WriteStatus(c, &wire.Refusal{Code: wire.CodeUnreachable, Msg: "server " + p.Target.String() + " at " + m.Addr + " is unreachable: " + err.Error()})
		return
	}
	if !s.track(up) {
		up.Close()
		return
	}
	defer func() { up.Close(); s.untrack(up) }()
	// The server that answers must be the one named: an address may have
	// passed to another server, or to a service that is no circuit server
	// at all, which is sent nothing.
	up.SetDeadline(time.Now().Add(wire.AuthTimeout))
	g, err := wire.ReadGreeting(up)
	if err != nil {
		wire.WriteStatus(c, &wire.Refusal{Code: wire.CodeUnreachable, Msg: "server " + p.Target.String() + " at " + m.Addr + ": " + err.Error()})
		return
	}
	if g.ID != p.Target {
		wire.WriteStatus(c, &wire.Refusal{Code: wire.CodeUnknownServer, Msg: "server " + p.Target.String() + " is not at " + m.Addr + " (" + g.ID.String() + " answers there)"})
		return
	}
	// Signed under the key the client's preamble was made under (or its
	// credential's), so that the target presents the certificate that
	// the client trusts, whatever key each side has in use.
	auth := s.ring.Auth()
	if p.Key != nil {
		auth = p.Key.Auth()
	}
	if _, err := up.Write(wire.NewRelayPreamble(p.Kind, p.Target, p.Hop+1, g, auth, c.RemoteAddr().String()).Bytes()); err != nil {
		wire.WriteStatus(c, &wire.Refusal{Code: wire.CodeUnreachable, Msg: "relaying to " + p.Target.String() + ": " + err.Error()})
		return
	}
	// The target's answer goes back to the client as it came.
	if err := wire.ReadStatus(up); err != nil {
		var r *wire.Refusal
		if !errors.As(err, &r) {
			r = &wire.Refusal{Code: wire.CodeUnreachable, Msg: "relaying to " + p.Target.String() + ": " + err.Error()}
		}
		wire.WriteStatus(c, r)
		return
	}
	if err := wire.WriteStatus(c, nil); err != nil {
		return
	}
	// TLS, if any, is the target's to check: the relay's part is done.
	release()
	c.SetDeadline(time.Time{})
	up.SetDeadline(time.Time{})
	reached = true
	s.metrics.Forwarded(kind, true) // now: a relayed connection may last long
	splice(c, up)
}

// splice copies both ways until both directions end. On Linux, io.Copy
// between TCP connections uses splice(2), so bytes never enter user space.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok && err == nil {
			tc.CloseWrite()
		} else {
			// An error on one side ends both.
			a.Close()
			b.Close()
		}
	}
	wg.Add(2)
	go half(a, b)
	go half(b, a)
	wg.Wait()
}

// untrackOnClose forgets a tracked connection when its owner closes it.
type untrackOnClose struct {
	net.Conn
	raw  net.Conn // the tracked connection, if Conn wraps it
	s    *Server
	who  caller // an RPC connection's authenticated caller
	once sync.Once
}

func (u *untrackOnClose) Close() error {
	err := u.Conn.Close()
	u.once.Do(func() {
		if u.raw != nil {
			u.s.untrack(u.raw)
		} else {
			u.s.untrack(u.Conn)
		}
	})
	return err
}

// connListener is the net.Listener gRPC serves: connections arrive from the
// accept loop once their preamble (and TLS) is done.
type connListener struct {
	addr  net.Addr
	ch    chan net.Conn
	once  sync.Once
	close chan struct{}
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, ch: make(chan net.Conn), close: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.close:
		c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.close:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.close) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// refusalLogs bounds how many refusals a second are logged one by one, so
// that a flood of bad connections cannot flood the log.
const refusalLogs = 10

// refusalLog counts refused connections per second.
type refusalLog struct {
	mu         sync.Mutex
	second     time.Time
	logged     int
	suppressed int
}

// refused logs a refused connection, or counts it once this second's
// allowance is spent; the count is logged with the next second's first.
func (s *Server) refused(c net.Conn, reason string) {
	l := &s.refusals
	l.mu.Lock()
	now := time.Now().Truncate(time.Second)
	if !now.Equal(l.second) {
		if l.suppressed > 0 {
			s.log.Warn("refused connections not logged one by one", "count", l.suppressed, "second", l.second.Format(time.RFC3339))
		}
		l.second, l.logged, l.suppressed = now, 0, 0
	}
	if l.logged >= refusalLogs {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.logged++
	l.mu.Unlock()
	s.log.Warn("refused connection", "from", c.RemoteAddr().String(), "reason", reason)
}

// scrubbedAtExit tells whether err, from claiming an output of e for the
// creator of process serial, is because e's server removed the process at
// its exit (Cmd.Scrub) and discarded the output: the removal comes first,
// so the element is no longer at its path.
func (s *Server) scrubbedAtExit(path string, e any, serial uint64, err error) bool {
	pe, ok := e.(*procElement)
	if !ok || serial == 0 || pe.serial != serial || !(errors.Is(err, stdio.ErrClosed) || errors.Is(err, stdio.ErrBusy)) {
		return false
	}
	select {
	case <-pe.Done():
	default:
		return false
	}
	_, now, err := s.element(path)
	return pe.Peek().Cmd.Scrub && (err != nil || now != e)
}
