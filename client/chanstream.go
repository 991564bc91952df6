package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/wire"
)

// maxIdleChanStreams bounds the idle channel streams kept for one channel:
// a program's concurrent senders and receivers each use one.
const maxIdleChanStreams = 8

// chanStream is a channel stream (package wire): a connection to the server
// of one channel that carries its sends and receives, one at a time. A
// stream whose operation ended cleanly goes back to its client's pool for
// the next one.
type chanStream struct {
	c    *Client
	path string
	conn net.Conn
	r    *bufio.Reader
	out  *wire.FrameSender
	buf  []byte // the last frame read
	// faulted: the server reported the operation's failure.
	faulted bool
	// idleSince is when it went back to the pool.
	idleSince time.Time
}

// trustIdle is how long a stream may have been idle and be taken without
// looking whether its server closed it. A server closes an idle stream
// only when it stops, or the stream's key or credential goes: an operation
// in that window fails (as the connection's loss) instead of dialling
// anew, and a program that sends or receives without pause pays no system
// call for the look.
const trustIdle = 250 * time.Millisecond

// chanStreams are a client's idle channel streams, by channel path.
type chanStreams map[string][]*chanStream

// chanStream takes an idle stream to the channel at path, or opens one.
func (c *Client) chanStream(ctx context.Context, path string) (*chanStream, error) {
	c.mu.Lock()
	for idle := c.chans[path]; len(idle) > 0; idle = c.chans[path] {
		s := idle[len(idle)-1]
		c.chans[path] = idle[:len(idle)-1]
		if time.Since(s.idleSince) < trustIdle || s.alive() {
			c.mu.Unlock()
			return s, nil
		}
		s.conn.Close()
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, errors.New("the client is closed")
	}
	conn, err := c.openStreamHeader(ctx, wire.StreamHeader{Path: path, Stream: "chan"})
	if err != nil {
		return nil, err
	}
	return &chanStream{c: c, path: path, conn: conn, r: bufio.NewReaderSize(conn, 64<<10), out: wire.NewFrameSender(conn)}, nil
}

// release gives a stream whose operation ended cleanly back to the pool.
func (s *chanStream) release() {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.chans[s.path]) >= maxIdleChanStreams {
		s.conn.Close()
		return
	}
	if c.chans == nil {
		c.chans = chanStreams{}
	}
	s.idleSince = time.Now()
	c.chans[s.path] = append(c.chans[s.path], s)
}

// closeChanStreams closes the idle streams; the caller holds c.mu.
func (c *Client) closeChanStreams() {
	for _, idle := range c.chans {
		for _, s := range idle {
			s.conn.Close()
		}
	}
	c.chans = nil
}

// alive tells whether an idle stream's server has not closed it (it says
// nothing on an idle stream, so anything to read is its end), without
// waiting.
func (s *chanStream) alive() bool {
	raw := s.conn
	if tc, ok := raw.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN:
		case err != nil || n == 0:
			alive = false // an error, or the end
		case s.conn != raw:
			// TLS may have sent a record of its own (a session ticket):
			// the end, if it came, is behind it.
		default:
			alive = false // a stray byte: the protocol is broken
		}
		return true
	})
	return alive
}

// send writes one frame.
func (s *chanStream) send(tag byte, p []byte) error { return s.out.Send(tag, p) }

// read reads one frame; the payload is valid until the next read. A fault
// from the server is returned as its error, of package fault's table.
func (s *chanStream) read() (byte, []byte, error) {
	tag, p, buf, err := wire.ReadFrame(s.r, s.buf)
	s.buf = buf
	if err != nil {
		return 0, nil, err
	}
	if tag == wire.ChanFault {
		s.faulted = true
		return tag, nil, permission(fault.FromWire(wire.DecodeRefusal(p)))
	}
	return tag, p, nil
}

// fail ends the stream after a failed operation and classifies err, which
// ctx (the operation's) may have caused: an error the server sent stands as
// it is; a broken connection is the host's or the dial-in server's loss, as
// for a failed call.
func (s *chanStream) fail(ctx context.Context, err error) error {
	s.conn.Close()
	if err == nil {
		return nil
	}
	if s.faulted {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		p, perr := anchor.Parse(s.path)
		if perr == nil {
			return s.c.streamErr(ctx, p.Server, err)
		}
	}
	return err
}

// expect reads the server's answer that an operation ended: ChanOK.
func (s *chanStream) expect() error {
	tag, _, err := s.read()
	if err == nil && tag != wire.ChanOK {
		err = fault.Errorf(fault.Remote, "channel stream: the server answered with a frame of tag %q, not OK", tag)
	}
	return err
}
