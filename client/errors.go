package client

import (
	"errors"
	"fmt"
)

// HostLostError says that the server hosting an anchor cannot be reached: it
// left the cluster, crashed or was cut off. The client itself is still
// usable.
type HostLostError struct {
	Server    string // X and 16 hex digits
	NotMember bool   // the dial-in server does not know the server at all
	Err       error
}

func (e *HostLostError) Error() string {
	return fmt.Sprintf("host %s lost: %v", e.Server, e.Err)
}

func (e *HostLostError) Unwrap() error { return e.Err }

// DialinLostError says that the client's dial-in server cannot be reached.
// The client and every anchor derived from it are unusable; dial again.
type DialinLostError struct {
	Addr string
	Err  error
}

func (e *DialinLostError) Error() string {
	return fmt.Sprintf("cannot reach dial-in server %s: %v", e.Addr, e.Err)
}

func (e *DialinLostError) Unwrap() error { return e.Err }

// AuthError says that a server refused the client's key, or its lack of one.
type AuthError struct {
	Addr string
	Err  error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("server %s refused this client: %v", e.Addr, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// ErrNotFound is wrapped by errors about anchors or elements that do not
// exist.
var ErrNotFound = errors.New("not found")

// ErrClosed is wrapped by the error of a send to, or a receive from, a
// channel that was closed (and, for a receive, drained).
var ErrClosed = errors.New("channel closed")

// ErrBadRequest is wrapped by errors about malformed requests: bad paths,
// bad arguments.
var ErrBadRequest = errors.New("bad request")

// ErrRemote is wrapped by other failures reported by a server.
var ErrRemote = errors.New("server error")

// classified is an error whose message is the server's (or the parser's),
// and which errors.Is matches against one of the sentinels above.
type classified struct {
	kind error
	msg  string
}

func (e *classified) Error() string { return e.msg }
func (e *classified) Unwrap() error { return e.kind }

func classify(kind error, msg string) error { return &classified{kind: kind, msg: msg} }
