package client

import (
	"fmt"

	"github.com/circuit-project/circuit/internal/fault"
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

// Is matches ErrLost.
func (e *HostLostError) Is(target error) bool { return target == ErrLost }

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

// Is matches ErrLost.
func (e *DialinLostError) Is(target error) bool { return target == ErrLost }

// AuthError says that a server refused the client's key, or its lack of one.
type AuthError struct {
	Addr string
	Err  error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("server %s refused this client: %v", e.Addr, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// The classes of failure that a server reports, one sentinel each (package
// fault holds the table: their gRPC and wire codes, the command line's exit
// codes). Errors of the class match it with errors.Is.
var (
	// ErrNotFound: no such anchor, element, server or worker.
	ErrNotFound = fault.ErrNotFound
	// ErrExists: the anchor already holds an element. Such errors match
	// ErrRemote too, as they did before ErrExists.
	ErrExists = fault.ErrExists
	// ErrBadRequest: a malformed request (a bad path, bad arguments).
	ErrBadRequest = fault.ErrBadRequest
	// ErrPrecondition: the element or server cannot do this now, or at all
	// (a container asked of a server started without -docker). Such errors
	// match ErrRemote too, as they did before ErrPrecondition.
	ErrPrecondition = fault.ErrPrecondition
	// ErrDenied: the caller may not do this.
	ErrDenied = fault.ErrDenied
	// ErrClosed: a send to, or a receive from, a channel that was closed
	// (and, for a receive, drained).
	ErrClosed = fault.ErrClosed
	// ErrRemote: any other failure reported by a server: the operation ran
	// and failed.
	ErrRemote = fault.ErrRemote
	// ErrLost is matched by *HostLostError and *DialinLostError, and by
	// nothing else: only a lost connection is ever reported as one.
	ErrLost = fault.ErrLost
)
