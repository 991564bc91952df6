package server

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

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
		if !s.track(c) {
			c.Close()
			return
		}
		s.goFunc(func() { s.serveConn(c) })
	}
}

// track records a connection so that Stop closes it; false once stopping.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// serveConn reads the preamble and hands the connection on. Connections that
// go to gRPC or to membership stay tracked until closed by their new owner or
// by Stop.
func (s *Server) serveConn(c net.Conn) {
	handedOff := false
	defer func() {
		if !handedOff {
			c.Close()
			s.untrack(c)
		}
	}()
	c.SetDeadline(time.Now().Add(wire.HandshakeTimeout))
	p, err := wire.ReadPreamble(c)
	if err != nil {
		if errors.Is(err, wire.ErrBadPreamble) {
			s.log.Warn("refused connection", "from", c.RemoteAddr().String(), "err", err)
			wire.WriteStatus(c, &wire.Refusal{Code: wire.CodeBadRequest, Msg: err.Error()})
		}
		return
	}
	if r := p.Check(s.cfg.Key); r != nil {
		s.log.Warn("refused connection", "from", c.RemoteAddr().String(), "reason", r.Msg)
		wire.WriteStatus(c, r)
		return
	}
	if p.Target != 0 && p.Target != s.id {
		if p.Kind == wire.KindGossip || p.Hop > 0 {
			wire.WriteStatus(c, &wire.Refusal{Code: wire.CodeUnknownServer, Msg: "server " + p.Target.String() + " is not here (it left or restarted)"})
			return
		}
		s.relay(c, p)
		return
	}
	if err := wire.WriteStatus(c, nil); err != nil {
		return
	}
	switch p.Kind {
	case wire.KindGossip:
		c.SetDeadline(time.Time{})
		handedOff = true
		s.cluster.HandleStream(&untrackOnClose{Conn: c, s: s})
	case wire.KindRPC:
		conn := c
		if s.cfg.Key != nil {
			tc := tls.Server(c, s.cfg.Key.ServerTLS())
			if err := tc.HandshakeContext(s.ctx); err != nil {
				s.log.Warn("refused connection", "from", c.RemoteAddr().String(), "reason", "TLS handshake: "+err.Error())
				return
			}
			conn = tc
		}
		c.SetDeadline(time.Time{})
		handedOff = true
		s.rpcLn.push(&untrackOnClose{Conn: conn, raw: c, s: s})
	default:
		wire.WriteStatus(c, &wire.Refusal{Code: wire.CodeBadRequest, Msg: "connection kind not served yet"})
	}
}

// relay connects a client to the member it named and splices the two
// connections. Only members' advertised addresses are ever dialled.
func (s *Server) relay(c net.Conn, p wire.Preamble) {
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
	p.Hop++
	up.SetDeadline(time.Now().Add(wire.HandshakeTimeout))
	if _, err := up.Write(p.Bytes()); err != nil {
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
	c.SetDeadline(time.Time{})
	up.SetDeadline(time.Time{})
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
