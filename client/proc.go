package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/wire"
)

// Cmd describes a process to start, as in the seeds.
type Cmd struct {
	Env   []string
	Dir   string
	Path  string
	Args  []string
	Scrub bool // remove the element when the process exits
	// Dirs lists the process in these directories of the anchor file
	// system (/firehose/clients/spam) while it runs, under its anchor's
	// name, which must then be a worker ID (R and 16 hex digits).
	Dirs []string
	// Result gives the process a pipe on file descriptor 3; what it writes
	// there, up to 1 MiB, is ProcStat.Result once it has exited.
	Result bool
	// NoStdin starts the process with its stdin at EOF.
	NoStdin bool `json:",omitempty"`
	// Tty runs the process on a pseudo-terminal of Rows x Cols (24 x 80
	// when zero): stdin and stdout are the terminal, and stderr is merged
	// into it. ProcHandle.Resize changes its size.
	Tty  bool   `json:",omitempty"`
	Rows uint16 `json:",omitempty"`
	Cols uint16 `json:",omitempty"`
	// Cred gives the process a credential of its own, so that it can use
	// the cluster without the cluster key: on a keyed server, the process
	// finds the credential's file named by $CIRCUIT_CRED, private to it,
	// renewed while it runs and removed when it exits. Spawn's workers
	// get one. Without a key on the server there is nothing to give.
	Cred bool `json:",omitempty"`
	// Stdin is written to the process's standard input, which is then
	// closed: no stream opens it. At most 1 MiB; a server keeps it while
	// the process runs (Spawn's request, which a respawn sends again),
	// and never shows it.
	Stdin []byte `json:",omitempty"`
	// Ready gives the process a pipe on file descriptor 3, or 4 with
	// Result, and the process is ready (ProcStat.Ready) once it writes a
	// byte there. Servers set it for Spawn's workers.
	Ready bool `json:",omitempty"`
}

// MaxStdin bounds Cmd.Stdin.
const MaxStdin = 1 << 20

// ProcStat is the state of a process.
type ProcStat struct {
	Cmd   Cmd
	Exit  error  // nil while running and after success; why it failed otherwise
	Phase string // "running" or "exited"

	PID      int
	Started  time.Time
	Exited   time.Time // zero while running
	ExitCode int       // -1 while running; 128+signal when killed by a signal
	Signal   string    // the signal that killed it, if one did
	Result   []byte    // with Cmd.Result, once exited
	Ready    time.Time // with Cmd.Ready, when the process said so; zero until then
	// Binary and Build describe a binary from a server's store (Spawn's):
	// its SHA-256, and what the Go toolchain recorded of its build (main
	// module, version, VCS revision, Go version, -ldflags).
	Binary, Build string
}

// MarshalJSON writes the state as circuit peek prints it (docs/CLI.md):
// Exit as its message, or null; Exited and Signal only once there are
// such; Result only when there is one.
func (st ProcStat) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Cmd      Cmd
		Phase    string
		Exit     *string
		ExitCode int
		Signal   string `json:",omitempty"`
		PID      int
		Started  time.Time
		Exited   *time.Time `json:",omitempty"`
		Result   []byte     `json:",omitempty"`
		Ready    *time.Time `json:",omitempty"`
		Binary   string     `json:",omitempty"`
		Build    string     `json:",omitempty"`
	}{st.Cmd, st.Phase, errText(st.Exit), st.ExitCode, st.Signal, st.PID, st.Started, timeOrNil(st.Exited), st.Result,
		timeOrNil(st.Ready), st.Binary, st.Build})
}

// errText is an error's message, or nil for no error.
func errText(err error) *string {
	if err == nil {
		return nil
	}
	msg := err.Error()
	return &msg
}

// timeOrNil is t, or nil for the zero time.
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ExitError is ProcStat.Exit for a process that failed.
type ExitError struct {
	Code   int
	Signal string
	Msg    string
}

func (e *ExitError) Error() string { return e.Msg }

// cmdToAPI is the one conversion of a Cmd to the wire's; cmdFromAPI is
// its inverse. TestCmdRoundTrip checks that both carry every field.
func cmdToAPI(c Cmd) *api.Cmd {
	return &api.Cmd{Path: c.Path, Args: c.Args, Env: c.Env, Dir: c.Dir, Scrub: c.Scrub, Dirs: c.Dirs, Result: c.Result, NoStdin: c.NoStdin,
		Tty: c.Tty, Rows: uint32(c.Rows), Cols: uint32(c.Cols), Cred: c.Cred, Stdin: c.Stdin, Ready: c.Ready}
}

func cmdFromAPI(c *api.Cmd) Cmd {
	return Cmd{
		Path: c.GetPath(), Args: c.GetArgs(), Env: c.GetEnv(), Dir: c.GetDir(), Scrub: c.GetScrub(),
		Dirs: c.GetDirs(), Result: c.GetResult(), NoStdin: c.GetNoStdin(),
		Tty: c.GetTty(), Rows: uint16(min(c.GetRows(), 0xffff)), Cols: uint16(min(c.GetCols(), 0xffff)), Cred: c.GetCred(),
		Stdin: c.GetStdin(), Ready: c.GetReady(),
	}
}

func fromProcStat(st *api.ProcStat) ProcStat {
	out := ProcStat{
		Cmd:   cmdFromAPI(st.GetCmd()),
		Phase: st.GetPhase(), PID: int(st.GetPid()), Started: time.Unix(0, st.GetStartedUnixNano()),
		ExitCode: int(st.GetExitCode()), Signal: st.GetSignal(), Result: st.GetResult(),
		Binary: st.GetBinarySha256(), Build: st.GetBuild(),
	}
	if st.GetReadyUnixNano() != 0 {
		out.Ready = time.Unix(0, st.GetReadyUnixNano())
	}
	if st.GetExitedUnixNano() != 0 {
		out.Exited = time.Unix(0, st.GetExitedUnixNano())
	}
	if st.GetExit() != "" {
		out.Exit = &ExitError{Code: out.ExitCode, Signal: out.Signal, Msg: st.GetExit()}
	}
	return out
}

func procState(r *api.PeekReply) any {
	if st := r.GetProc(); st != nil {
		return fromProcStat(st)
	}
	return nil
}

func procHandle(c *Client, path string) any { return c.ProcAt(path).Proc() }

// serverOf parses a path below a server and returns the connection to it.
func (c *Client) serverOf(path string) (*serverConn, error) {
	p, err := anchor.Parse(path)
	if err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	if p.Server == 0 {
		return nil, fault.New(fault.BadRequest, fmt.Sprintf("%s is not below a server", path))
	}
	return c.conn(p.Server)
}

// MakeProcAt starts a process at path and returns its handle. The process
// runs until it exits; MakeProc does not wait.
func (c *Client) MakeProcAt(ctx context.Context, path string, cmd Cmd) (*ProcHandle, error) {
	sc, err := c.serverOf(path)
	if err != nil {
		return nil, err
	}
	st, err := api.NewProcClient(sc.cc).Make(ctx, &api.MakeProcRequest{Path: path, Cmd: cmdToAPI(cmd)})
	if err != nil {
		return nil, c.wrap(ctx, sc, err)
	}
	return &ProcHandle{c: c, path: path, serial: st.GetSerial(), cmd: cmd}, nil
}

// ProcAt returns a handle on whatever process is at path.
func (c *Client) ProcAt(path string) *ProcHandle { return &ProcHandle{c: c, path: path} }

// ProcAtSerial returns a handle on the process with the given serial (see
// ProcHandle.Serial) at path, whose Wait answers even after Cmd.Scrub
// removed it.
func (c *Client) ProcAtSerial(path string, serial uint64) *ProcHandle {
	return &ProcHandle{c: c, path: path, serial: serial}
}

// KindAt returns the kind of element at path ("" for none).
func (c *Client) KindAt(ctx context.Context, path string) (string, error) {
	sc, err := c.serverOf(path)
	if err != nil {
		return "", err
	}
	r, err := api.NewAnchorClient(sc.cc).Get(ctx, &api.PathRequest{Path: path})
	if err != nil {
		return "", c.wrap(ctx, sc, err)
	}
	return r.GetKind(), nil
}

// ScrubAt removes the element at path, aborting it (a process is killed).
func (c *Client) ScrubAt(ctx context.Context, path string) error {
	sc, err := c.serverOf(path)
	if err != nil {
		return err
	}
	_, err = api.NewAnchorClient(sc.cc).Scrub(ctx, &api.PathRequest{Path: path})
	return c.wrap(ctx, sc, err)
}

// ProcHandle is a process element, in the context style. Its Proc method
// gives the seeds' style.
type ProcHandle struct {
	c      *Client
	path   string
	serial uint64 // 0 when not known: whatever is at path
	cmd    Cmd
}

// Path is the anchor of the process.
func (h *ProcHandle) Path() string { return h.path }

// Serial identifies the process among all that were at its anchor; 0 for
// a handle from ProcAt, which means whatever process is there.
func (h *ProcHandle) Serial() uint64 { return h.serial }

// Peek describes the process.
func (h *ProcHandle) Peek(ctx context.Context) (ProcStat, error) {
	sc, err := h.c.serverOf(h.path)
	if err != nil {
		return ProcStat{}, err
	}
	st, err := api.NewProcClient(sc.cc).Peek(ctx, &api.PathRequest{Path: h.path})
	if err != nil {
		return ProcStat{}, h.c.wrap(ctx, sc, err)
	}
	return fromProcStat(st), nil
}

// Wait blocks until the process exits and returns its final state, even if
// Cmd.Scrub removed it meanwhile.
func (h *ProcHandle) Wait(ctx context.Context) (ProcStat, error) {
	sc, err := h.c.serverOf(h.path)
	if err != nil {
		return ProcStat{}, err
	}
	st, err := api.NewProcClient(sc.cc).Wait(ctx, &api.WaitRequest{Path: h.path, Serial: h.serial})
	if err != nil {
		return ProcStat{}, h.c.wrap(ctx, sc, err)
	}
	return fromProcStat(st), nil
}

// Signal sends a signal by name (KILL, TERM, INT, HUP, ...) to the
// process's group.
func (h *ProcHandle) Signal(ctx context.Context, sig string) error {
	sc, err := h.c.serverOf(h.path)
	if err != nil {
		return err
	}
	_, err = api.NewProcClient(sc.cc).Signal(ctx, &api.SignalRequest{Path: h.path, Signal: sig})
	return h.c.wrap(ctx, sc, err)
}

// Resize sets the size of the process's terminal (Cmd.Tty); the process
// gets SIGWINCH.
func (h *ProcHandle) Resize(ctx context.Context, rows, cols uint16) error {
	sc, err := h.c.serverOf(h.path)
	if err != nil {
		return err
	}
	_, err = api.NewProcClient(sc.cc).Resize(ctx, &api.ResizeRequest{Path: h.path, Rows: uint32(rows), Cols: uint32(cols)})
	return h.c.wrap(ctx, sc, err)
}

// OpenStream connects to the process's stdin, stdout or stderr. Reading the
// returned connection reads the output; for stdin, writing writes and
// CloseWrite (or Close) sends EOF.
func (h *ProcHandle) OpenStream(ctx context.Context, name string) (net.Conn, error) {
	return h.c.openStream(ctx, h.path, name, h.serial)
}

// OpenStreamAt connects to the stdin, stdout or stderr of the element (a
// process or a container) at path.
func (c *Client) OpenStreamAt(ctx context.Context, path, name string) (net.Conn, error) {
	return c.openStream(ctx, path, name, 0)
}

// streams makes the three lazy standard streams of an element.
func streams(path string, open func(ctx context.Context, name string) (net.Conn, error)) (stdin, stdout, stderr *lazyStream) {
	mk := func(name string) *lazyStream { return &lazyStream{path: path, name: name, open: open} }
	return mk("stdin"), mk("stdout"), mk("stderr")
}

func (c *Client) openStream(ctx context.Context, path, name string, serial uint64) (net.Conn, error) {
	return c.openStreamHeader(ctx, wire.StreamHeader{Path: path, Stream: name, Serial: serial})
}

// openStreamHeader opens a stream connection to the server of h.Path;
// what follows the header, if anything, goes with it, before the server's
// answer.
func (c *Client) openStreamHeader(ctx context.Context, h wire.StreamHeader, follow ...[]byte) (net.Conn, error) {
	path := h.Path
	p, err := anchor.Parse(path)
	if err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	conn, err := c.dialServer(ctx, wire.KindStream, p.Server)
	if err != nil {
		return nil, c.streamErr(ctx, p.Server, err)
	}
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	} else {
		conn.SetDeadline(time.Now().Add(wire.HandshakeTimeout))
	}
	if err := wire.WriteStreamHeader(conn, h, follow...); err != nil {
		conn.Close()
		return nil, c.streamErr(ctx, p.Server, err)
	}
	if err := wire.ReadStatus(conn); err != nil {
		conn.Close()
		var r *wire.Refusal
		if errors.As(err, &r) {
			if fe := fault.FromWire(r); fe != nil {
				return nil, permission(fe) // the server said what failed
			}
		}
		return nil, c.streamErr(ctx, p.Server, err)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// streamErr classifies a failure to open a stream like a failed call.
func (c *Client) streamErr(ctx context.Context, server ident.ID, err error) error {
	sc := &serverConn{target: server, lastErr: err}
	return c.wrap(ctx, sc, errConnFailed)
}

// lazyStream is a standard stream that connects on first use, so that the
// seeds' proc.Stdin() and proc.Stdout() never block or fail by themselves.
type lazyStream struct {
	path string
	name string
	open func(ctx context.Context, name string) (net.Conn, error)

	mu     sync.Mutex
	conn   net.Conn
	err    error
	closed bool
}

func (s *lazyStream) get() (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%s of %s: %w", s.name, s.path, net.ErrClosed)
	}
	if s.conn == nil && s.err == nil {
		s.conn, s.err = s.open(context.Background(), s.name)
	}
	return s.conn, s.err
}

func (s *lazyStream) Read(b []byte) (int, error) {
	c, err := s.get()
	if err != nil {
		return 0, err
	}
	return c.Read(b)
}

func (s *lazyStream) Write(b []byte) (int, error) {
	c, err := s.get()
	if err != nil {
		return 0, err
	}
	return c.Write(b)
}

// WriteTo lets io.Copy from the stream use the connection's own fast path.
func (s *lazyStream) WriteTo(w io.Writer) (int64, error) {
	c, err := s.get()
	if err != nil {
		return 0, err
	}
	return io.Copy(w, c)
}

// ReadFrom lets io.Copy into stdin use the connection's fast path.
func (s *lazyStream) ReadFrom(r io.Reader) (int64, error) {
	c, err := s.get()
	if err != nil {
		return 0, err
	}
	return io.Copy(c, r)
}

// Close ends the stream: EOF for stdin, "discard the rest" for output. A
// stream never used is connected just to say so.
func (s *lazyStream) Close() error {
	c, err := s.get()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if s.name == "stdin" {
		return closeStdin(c)
	}
	return c.Close()
}

// closeStdin sends EOF on a stdin stream and waits for the server to
// finish writing to the process, so that its return means the input was
// delivered.
func closeStdin(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		io.Copy(io.Discard, c)
	}
	return c.Close()
}
