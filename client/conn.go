package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/wire"
)

// serverConn is the client's gRPC connection to one server, reached through
// the dial-in server (target 0 is the dial-in server itself).
type serverConn struct {
	target ident.ID
	cc     *grpc.ClientConn
	api    api.ServerClient

	mu      sync.Mutex
	first   net.Conn  // handed to gRPC on its first dial, if still fresh
	firstAt time.Time // when first was opened
	lastErr error     // the last dial failure
}

// close closes the gRPC connection, and the first connection if gRPC never
// took it.
func (sc *serverConn) close() error {
	sc.mu.Lock()
	if sc.first != nil {
		sc.first.Close()
		sc.first = nil
	}
	sc.mu.Unlock()
	return sc.cc.Close()
}

func (sc *serverConn) dialErr() error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.lastErr
}

// newServerConn makes a gRPC connection whose transport is a connection to
// the dial-in server, relayed to target. first, if not nil, is an already
// opened connection for gRPC to use first.
func newServerConn(dialin string, target ident.ID, dial func(context.Context) (net.Conn, error), first net.Conn) (*serverConn, error) {
	sc := &serverConn{target: target, first: first, firstAt: time.Now()}
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		sc.mu.Lock()
		if c := sc.first; c != nil {
			sc.first = nil
			// The server waits only so long for the first bytes after the
			// preamble; a connection left unused past that is closed.
			if time.Since(sc.firstAt) < wire.HandshakeTimeout/2 {
				sc.mu.Unlock()
				return c, nil
			}
			c.Close()
		}
		sc.mu.Unlock()
		c, err := dial(ctx)
		sc.mu.Lock()
		sc.lastErr = err
		sc.mu.Unlock()
		return c, err
	}
	cc, err := grpc.NewClient("passthrough:///"+dialin,
		grpc.WithContextDialer(dialer),
		grpc.WithTransportCredentials(insecure.NewCredentials()), // TLS, when keyed, is done by the dialer
		grpc.WithInitialWindowSize(windowSize),
		grpc.WithInitialConnWindowSize(windowSize),
	)
	if err != nil {
		return nil, fmt.Errorf("making connection to %s: %w", dialin, err)
	}
	sc.cc = cc
	sc.api = api.NewServerClient(cc)
	if first != nil {
		cc.Connect() // take the opened connection while it is fresh
	}
	return sc, nil
}

// conn returns the connection to server id, making it on first use.
func (c *Client) conn(id ident.ID) (*serverConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, &DialinLostError{Addr: c.dialin, Err: errors.New("client closed")}
	}
	if sc, ok := c.conns[id]; ok {
		return sc, nil
	}
	sc, err := newServerConn(c.dialin, id, func(ctx context.Context) (net.Conn, error) { return wire.Dial(ctx, c.dialin, wire.KindRPC, id, c.auth) }, nil)
	if err != nil {
		return nil, err
	}
	c.conns[id] = sc
	return sc, nil
}

// wrap turns a failed call on server target (0: the dial-in server) into the
// client's error types.
func (c *Client) wrap(ctx context.Context, sc *serverConn, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if ctx.Err() != nil && (st.Code() == codes.Canceled || st.Code() == codes.DeadlineExceeded) {
		return ctx.Err()
	}
	if fe := fault.FromStatus(err); fe != nil {
		return permission(fe) // the server said what failed (package fault's table)
	}
	// The connection failed: find out whose fault it was.
	cause := sc.dialErr()
	if cause == nil {
		cause = errors.New(st.Message())
	}
	var lost error = &HostLostError{Server: sc.target.String(), Err: cause}
	var refusal *wire.Refusal
	if errors.As(cause, &refusal) {
		switch {
		case refusal.IsAuth():
			return &AuthError{Addr: c.dialin, Err: refusal}
		case refusal.Code == wire.CodeUnknownServer || refusal.Code == wire.CodeUnreachable:
			lost = &HostLostError{Server: sc.target.String(), NotMember: refusal.Code == wire.CodeUnknownServer, Err: refusal}
		}
	}
	if errors.Is(cause, security.ErrKeyMismatch) {
		return &AuthError{Addr: c.dialin, Err: cause}
	}
	if sc.target == 0 {
		return &DialinLostError{Addr: c.dialin, Err: cause}
	}
	// The relayed connection broke, or the dial-in server refused to
	// relay it: only the host is lost if the dial-in server still answers.
	// (gRPC fails calls with the last dial's error while it waits to dial
	// again, so a refusal may be older than the dial-in server's end.)
	if _, perr := c.members(ctx); perr != nil {
		var dl *DialinLostError
		if errors.As(perr, &dl) {
			return perr
		}
	}
	return lost
}

// windowSize is the HTTP/2 flow-control window of each stream and
// connection: large messages stream through relays without waiting for
// window updates every 64 KiB.
const windowSize = 4 << 20

// errConnFailed stands for a connection that failed outside gRPC; wrap
// classifies it by the serverConn's recorded dial error.
var errConnFailed = status.Error(codes.Unavailable, "connection failed")

// dialErrorText makes dial failures readable in one line.
func dialErrorText(err error) string {
	s := err.Error()
	return strings.TrimPrefix(s, "dial tcp ")
}
