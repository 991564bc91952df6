package client

import (
	"errors"
	"fmt"
	"regexp"

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

// PermissionError says that the server which was to run an operation
// refused it to this client's credential (or, under -no-exec, to everyone).
// It matches ErrDenied with errors.Is, and is never a lost host.
type PermissionError struct {
	Who    string // the credential's name, or "key"
	Role   string // its role
	Op     string // the operation, as the table of operations names it (Proc.Make)
	Path   string // the anchor it was to act on, or the server's
	Reason string // why: the role it needs, a selector or subtree it is outside
	Msg    string // the whole message, as the server wrote it
}

func (e *PermissionError) Error() string { return e.Msg }

// Is matches ErrDenied.
func (e *PermissionError) Is(target error) bool { return target == ErrDenied }

// deniedText is how servers word a refusal (internal/server, authz.go).
var deniedText = regexp.MustCompile(`^permission denied: (.+) \(role ([^)]*)\) may not (\S+) on (\S+): (.*)$`)

// permission turns a server's refusal of class Denied into a
// *PermissionError; other errors are returned as they are.
func permission(err error) error {
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Class != fault.Denied {
		return err
	}
	pe := &PermissionError{Msg: fe.Msg}
	if m := deniedText.FindStringSubmatch(fe.Msg); m != nil {
		pe.Who, pe.Role, pe.Op, pe.Path, pe.Reason = m[1], m[2], m[3], m[4], m[5]
	}
	return pe
}

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
