// Package fault owns circuit's one table of failures, shared by the server,
// the client library and the command line. Each class of failure has one
// row: the gRPC code it travels as in an RPC's status, the wire code that
// refuses a stream or a run stream, the sentinel error that the client's
// errors match with errors.Is, the command line's exit code, and the web
// console's HTTP status.
//
// The server says what failed by returning an *Error of a class (New,
// Errorf); gRPC sends it with the class's code, and refuseStream writes the
// class's wire code. The client turns what it receives back into an *Error
// of the same class (FromStatus, FromWire). Only a lost transport, a code
// that only gRPC itself sends (Unavailable), ever becomes a lost host or a
// lost dial-in server; a code the table does not know is a remote failure.
package fault

import (
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/circuit-project/circuit/internal/wire"
)

// Class is a class of failure. The zero Class is Remote.
type Class uint8

// The classes. Remote is first, so that the zero Class, and any failure
// that says nothing of its class, is a remote failure.
const (
	Remote       Class = iota // the operation ran and failed
	NotFound                  // no such anchor, element, server or worker
	Exists                    // the anchor is taken
	BadRequest                // a malformed path, argument or request
	Precondition              // the operation cannot run in this state, like mkdkr on a server without -docker
	Denied                    // the caller may not do this
	Closed                    // the channel is closed (and drained, for a receive)
	Lost                      // the connection to a server was lost
	nClasses
)

// Exit codes of the command line. Processes' own exit codes pass through
// unchanged where a command reports them (wait, exec, run).
const (
	ExitOK           = 0
	ExitFailed       = 1
	ExitUsage        = 2
	ExitNotFound     = 3
	ExitConnect      = 4
	ExitDenied       = 5
	ExitExists       = 6
	ExitPrecondition = 7
)

// The sentinels. The client library exports them under the same names
// (client.ErrNotFound is ErrNotFound).
var (
	ErrRemote       = errors.New("server error")
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("exists")
	ErrBadRequest   = errors.New("bad request")
	ErrPrecondition = errors.New("failed precondition")
	ErrDenied       = errors.New("permission denied")
	ErrClosed       = errors.New("channel closed")
	ErrLost         = errors.New("connection lost")
)

// row is one class's entry in the table.
type row struct {
	name string
	code codes.Code // in an RPC's status
	wire wire.Code  // in a stream's refusal; 0 for none
	err  error      // the sentinel
	exit int        // the command line's exit code
	// remote: errors.Is(err, ErrRemote) holds too. Before these classes
	// had sentinels of their own, the client reported them as ErrRemote;
	// programs that test for it keep working.
	remote bool
	doc    string // what the exit code means, for docs/CLI.md
	goErr  string // what the client library's error matches, for docs/CLI.md
	http   int    // the web console's answer
}

var table = [nClasses]row{
	Remote:       {"remote failure", codes.Unknown, wire.CodeRemote, ErrRemote, ExitFailed, false, "the operation ran at the server and failed, or a remote command failed; also any code the table does not know", "ErrRemote", http.StatusBadGateway},
	NotFound:     {"not found", codes.NotFound, wire.CodeNotFound, ErrNotFound, ExitNotFound, false, "no element, anchor, server or worker at the path", "ErrNotFound", http.StatusNotFound},
	Exists:       {"exists", codes.AlreadyExists, wire.CodeExists, ErrExists, ExitExists, true, "the anchor already holds an element", "ErrExists (and ErrRemote)", http.StatusConflict},
	BadRequest:   {"bad request", codes.InvalidArgument, wire.CodeBadRequest, ErrBadRequest, ExitUsage, false, "an argument that the tool or the server found malformed (and, from the command line itself, an unknown command or flag)", "ErrBadRequest", http.StatusBadRequest},
	Precondition: {"failed precondition", codes.FailedPrecondition, wire.CodePrecondition, ErrPrecondition, ExitPrecondition, true, "the element or server cannot do this now, or at all: a container asked of a server without -docker, a signal to a process that has exited, a stream already being read", "ErrPrecondition (and ErrRemote)", http.StatusConflict},
	Denied:       {"permission denied", codes.PermissionDenied, wire.CodeDenied, ErrDenied, ExitDenied, false, "the caller may not do this", "ErrDenied", http.StatusForbidden},
	Closed:       {"closed", codes.OutOfRange, wire.CodeClosed, ErrClosed, ExitFailed, false, "the channel is closed (and drained, for a receive)", "ErrClosed", http.StatusGone},
	Lost:         {"lost transport", codes.Unavailable, 0, ErrLost, ExitConnect, false, "no dial-in server, or a server lost mid-operation; the command line's exit code also for a key refused (*AuthError)", "ErrLost: *HostLostError, *DialinLostError", http.StatusBadGateway},
}

func (c Class) row() row {
	if c >= nClasses {
		return table[Remote]
	}
	return table[c]
}

// String names the class.
func (c Class) String() string { return c.row().name }

// Code is the gRPC code the class travels as.
func (c Class) Code() codes.Code { return c.row().code }

// Wire is the code that refuses a stream for a failure of the class. Lost
// has none: a relay that cannot reach its target refuses with
// wire.CodeUnreachable.
func (c Class) Wire() wire.Code { return c.row().wire }

// Sentinel is the error that errors of the class match with errors.Is.
func (c Class) Sentinel() error { return c.row().err }

// Exit is the command line's exit code for a failure of the class.
func (c Class) Exit() int { return c.row().exit }

// HTTP is the web console's status code for a failure of the class.
func (c Class) HTTP() int { return c.row().http }

// Doc says what a failure of the class means, for docs/CLI.md.
func (c Class) Doc() string { return c.row().doc }

// ClientError names what the client library's errors of the class match,
// for docs/CLI.md.
func (c Class) ClientError() string { return c.row().goErr }

// Classes lists every class, in the table's order.
func Classes() []Class {
	out := make([]Class, nClasses)
	for i := range out {
		out[i] = Class(i)
	}
	return out
}

// Error is a failure of a class, with the message the user reads.
type Error struct {
	Class Class
	Msg   string
}

// New returns a failure of class c with message msg.
func New(c Class, msg string) error { return &Error{Class: c, Msg: msg} }

// Errorf returns a failure of class c with a formatted message.
func Errorf(c Class, format string, a ...any) error {
	return &Error{Class: c, Msg: fmt.Sprintf(format, a...)}
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the class's sentinel, for errors.Is.
func (e *Error) Unwrap() error { return e.Class.Sentinel() }

// Is matches ErrRemote for the classes that the client used to report as
// remote failures.
func (e *Error) Is(target error) bool { return target == ErrRemote && e.Class.row().remote }

// GRPCStatus makes gRPC send the failure with its class's code.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Class.Code(), e.Msg) }

// Of returns the class of err: the class of an *Error, or of a sentinel,
// it wraps, or of a gRPC status; anything else is Remote.
func Of(err error) Class {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Class
	}
	for i, r := range table {
		if errors.Is(err, r.err) {
			return Class(i)
		}
	}
	if st, ok := status.FromError(err); ok {
		if c, app := fromCode(st.Code()); app {
			return c
		}
	}
	return Remote
}

// fromCode returns the class of a gRPC code, and whether the code is an
// application's failure rather than the transport's.
func fromCode(code codes.Code) (Class, bool) {
	switch code {
	case codes.OK:
		return Remote, false
	case codes.Unavailable, codes.Canceled:
		// Unavailable is only ever gRPC's own: the connection failed.
		// Canceled without the caller canceling means the client's
		// connection is closing.
		return Lost, false
	}
	for i, r := range table {
		if r.code == code && Class(i) != Lost {
			return Class(i), true
		}
	}
	return Remote, true // an unknown code: the operation ran and failed
}

// FromStatus turns a failed RPC's error into an *Error of its class. It
// returns nil for a lost transport (the caller finds out whose) and for an
// error that is not a gRPC status.
func FromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() == codes.OK {
		return nil
	}
	c, app := fromCode(st.Code())
	if !app {
		return nil
	}
	return &Error{Class: c, Msg: st.Message()}
}

// FromWire turns a stream's refusal into an *Error of its class. It returns
// nil for the codes of the connection itself (an unknown or unreachable
// server, a key refused), which the caller reports as such.
func FromWire(r *wire.Refusal) error {
	if r == nil || r.Code < wire.CodeBadRequest {
		return nil
	}
	for i, row := range table {
		if row.wire == r.Code {
			return &Error{Class: Class(i), Msg: r.Msg}
		}
	}
	return &Error{Class: Remote, Msg: r.Msg} // a code from a newer server
}

// Refusal is the stream refusal that reports err: its class's wire code
// and its message.
func Refusal(err error) *wire.Refusal {
	c := Of(err)
	code := c.Wire()
	if code == 0 {
		code = wire.CodeRemote
	}
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Message()
	}
	return &wire.Refusal{Code: code, Msg: msg}
}
