package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/circuit-project/circuit/internal/element/stdio"
	"github.com/circuit-project/circuit/internal/kind"
)

// Cmd is what to run.
type Cmd struct {
	Path  string
	Args  []string
	Env   []string
	Dir   string
	Scrub bool
	// Result gives the process a pipe on file descriptor 3; what it
	// writes there, up to MaxResult bytes, is Stat.Result once it exits.
	Result bool
	// Dirs are the anchor-file-system directories the process is listed
	// in; the server keeps the listing, the process only reports them.
	Dirs []string
	// NoStdin starts the process with its stdin at EOF, sparing a caller
	// with nothing to send a stream connection just to close it.
	NoStdin bool
	// Tty runs the process on a new pseudo-terminal of Rows x Cols
	// (24 x 80 when zero): stdin and stdout are the terminal, stderr is
	// merged into it, and Resize changes its size.
	Tty        bool
	Rows, Cols uint16
	// Cred gives the process a credential of its own for the cluster; the
	// server makes it and names its file in the process's environment
	// (CIRCUIT_CRED).
	Cred bool
	// Stdin is written to the process's standard input, which is then
	// closed; no client can open it. At most MaxStdin bytes.
	Stdin []byte
	// Ready gives the process a pipe on the descriptor ReadyFD names; it
	// is ready (Stat.Ready, Proc.Ready) once it writes a byte there.
	Ready bool
}

// MaxStdin bounds Cmd.Stdin.
const MaxStdin = 1 << 20

// ReadyFD is the descriptor of a process's ready pipe (Cmd.Ready): 3, or 4
// after the result's.
func (c Cmd) ReadyFD() int {
	if c.Result {
		return 4
	}
	return 3
}

// MaxResult bounds a process's result (Cmd.Result).
const MaxResult = 1 << 20

// Phase of a process.
const (
	Running = "running"
	Exited  = "exited"
)

// Stat is the state of a process.
type Stat struct {
	Cmd      Cmd
	Phase    string
	PID      int
	Started  time.Time
	Exited   time.Time // zero while running
	ExitCode int       // 128+signal when killed by a signal; -1 while running
	Signal   string    // the signal that killed it, "" otherwise
	Exit     string    // "" for success or while running, else why it failed
	Result   []byte    // with Cmd.Result, what it wrote to fd 3, once exited
	Ready    time.Time // with Cmd.Ready, when it said it was; zero until then
}

// ErrBusy is returned to a second concurrent client of a stream.
var ErrBusy = stdio.ErrBusy

// ErrClosed is returned for a stream that has ended.
var ErrClosed = stdio.ErrClosed

// Proc is a running or exited process. Its standard streams are the
// embedded stdio.Streams.
type Proc struct {
	*stdio.Streams
	cmd    Cmd
	ec     *exec.Cmd
	done   chan struct{}
	result chan []byte   // with Cmd.Result: what fd 3 carried, once it closed
	ready  chan struct{} // closed once the process said it is ready (Cmd.Ready)
	pty    *os.File      // with Cmd.Tty: the terminal's master

	mu   sync.Mutex
	stat Stat
}

// Start starts cmd. The returned process is running.
func Start(cmd Cmd) (*Proc, error) {
	if cmd.Path == "" {
		return nil, errors.New("command has no Path")
	}
	ec := exec.Command(cmd.Path, cmd.Args...)
	ec.Args[0] = cmd.Path
	ec.Env = cmd.Env
	if ec.Env == nil {
		ec.Env = []string{}
	}
	ec.Dir = cmd.Dir
	// The process dies with its server (Pdeathsig): an element outliving
	// the server that holds it could no longer be seen or stopped.
	ec.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	if len(cmd.Stdin) > MaxStdin {
		return nil, fmt.Errorf("the command's stdin has %d bytes, more than %d", len(cmd.Stdin), MaxStdin)
	}
	p := &Proc{cmd: cmd, ec: ec, done: make(chan struct{}), ready: make(chan struct{})}
	if cmd.Tty {
		if cmd.Result || cmd.NoStdin || cmd.Stdin != nil || cmd.Ready {
			return nil, errors.New("a process on a terminal takes none of Result, NoStdin, Stdin and Ready")
		}
		if _, err := startTty(p, ec); err != nil {
			return nil, err
		}
		p.stat = Stat{Cmd: cmd, Phase: Running, PID: ec.Process.Pid, Started: time.Now(), ExitCode: -1}
		go p.wait()
		return p, nil
	}
	var child, ours []*os.File
	fail := func(err error) (*Proc, error) {
		for _, f := range append(child, ours...) {
			f.Close()
		}
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("making stdin pipe: %w", err))
	}
	child, ours = append(child, r), append(ours, w)
	for _, name := range []string{"stdout", "stderr"} {
		r, w, err := outputPipe(name)
		if err != nil {
			return fail(err)
		}
		child, ours = append(child, w), append(ours, r)
	}
	// The extra descriptors from 3 on: the result's, then the ready one's.
	// The child has its copies of their write ends once started.
	extra := func(want bool, name string) (*os.File, error) {
		if !want {
			return nil, nil
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("making %s pipe: %w", name, err)
		}
		ours = append(ours, r)
		ec.ExtraFiles = append(ec.ExtraFiles, w)
		child = append(child, w)
		return r, nil
	}
	resultR, err := extra(cmd.Result, "result")
	if err != nil {
		return fail(err)
	}
	readyR, err := extra(cmd.Ready, "ready")
	if err != nil {
		return fail(err)
	}
	ec.Stdin = child[0]
	ec.Stdout, ec.Stderr = child[1], child[2]
	if ec, err = startRetrying(ec); err != nil {
		return fail(err)
	}
	p.ec = ec
	for _, f := range child {
		f.Close() // the child has its copies
	}
	p.Streams = stdio.New(ours[0], ours[1], ours[2])
	switch {
	case cmd.NoStdin:
		p.Streams.CloseStdin()
	case cmd.Stdin != nil:
		// Written while the process reads it; the write ends when the
		// pipe's last reader goes, at the latest.
		p.Streams.ClaimStdin()
		go p.Streams.CopyStdin(bytes.NewReader(cmd.Stdin))
	}
	p.stat = Stat{Cmd: cmd, Phase: Running, PID: ec.Process.Pid, Started: time.Now(), ExitCode: -1}
	if resultR != nil {
		p.result = make(chan []byte, 1)
		go readResult(resultR, p.result)
	}
	if readyR != nil {
		go p.awaitReady(readyR)
	}
	go p.wait()
	return p, nil
}

// startRetrying starts ec, retrying briefly on ETXTBSY: a binary just
// written and closed (an upload) can still be open for writing in a child
// that another goroutine forked meanwhile and that has not yet reached its
// exec.
func startRetrying(ec *exec.Cmd) (*exec.Cmd, error) {
	for i := 0; ; i++ {
		err := ec.Start()
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || i == 20 {
			return ec, err
		}
		time.Sleep(time.Duration(i+1) * time.Millisecond)
		ec = &exec.Cmd{
			Path: ec.Path, Args: ec.Args, Env: ec.Env, Dir: ec.Dir, SysProcAttr: ec.SysProcAttr,
			Stdin: ec.Stdin, Stdout: ec.Stdout, Stderr: ec.Stderr, ExtraFiles: ec.ExtraFiles,
		}
	}
}

// readResult reads fd 3 until every copy of its write end has closed, and
// keeps at most MaxResult bytes.
func readResult(r *os.File, out chan<- []byte) {
	defer r.Close()
	b, _ := io.ReadAll(io.LimitReader(r, MaxResult))
	io.Copy(io.Discard, r) // a writer past the limit must not block
	out <- b
}

// awaitReady marks the process ready once it writes a byte on its ready
// pipe; the pipe's end, at the exit at the latest, ends the wait.
func (p *Proc) awaitReady(r *os.File) {
	defer r.Close()
	var b [1]byte
	if n, _ := r.Read(b[:]); n == 1 {
		p.mu.Lock()
		p.stat.Ready = time.Now()
		p.mu.Unlock()
		close(p.ready)
	}
}

// Ready is closed once the process said it is ready (Cmd.Ready); never
// for one that did not.
func (p *Proc) Ready() <-chan struct{} { return p.ready }

func (p *Proc) wait() {
	err := p.ec.Wait()
	now := time.Now()
	var result []byte
	if p.result != nil {
		// fd 3 reaches EOF at the exit, unless the process passed it on
		// to a child that lives on: then the result is what came so far.
		select {
		case result = <-p.result:
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.mu.Lock()
	p.stat.Result = result
	p.stat.Phase, p.stat.Exited = Exited, now
	ws, _ := p.ec.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		p.stat.Signal = signalName(ws.Signal())
		p.stat.ExitCode = 128 + int(ws.Signal())
		p.stat.Exit = "killed by signal " + p.stat.Signal
	default:
		p.stat.ExitCode = ws.ExitStatus()
		if err != nil {
			p.stat.Exit = err.Error()
		}
	}
	p.mu.Unlock()
	close(p.done)
}

// Kind is kind.Proc.
func (p *Proc) Kind() kind.Kind { return kind.Proc }

// Cmd is the command the process runs.
func (p *Proc) Cmd() Cmd { return p.cmd }

// Peek returns the current state without blocking.
func (p *Proc) Peek() Stat {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stat
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait blocks until the process exits or ctx ends.
func (p *Proc) Wait(ctx context.Context) (Stat, error) {
	select {
	case <-p.done:
		return p.Peek(), nil
	case <-ctx.Done():
		return Stat{}, ctx.Err()
	}
}

// Signal sends the named signal to the process group.
func (p *Proc) Signal(name string) error {
	sig, err := ParseSignal(name)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
		return fmt.Errorf("process %d has exited", p.stat.PID)
	default:
	}
	if err := syscall.Kill(-p.ec.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s: %w", name, err)
	}
	return nil
}

// Scrub aborts the process: SIGKILL to its group. It returns at once.
func (p *Proc) Scrub() {
	select {
	case <-p.done:
	default:
		syscall.Kill(-p.ec.Process.Pid, syscall.SIGKILL)
	}
	p.Discard(false) // the group was killed: its output ends soon
}

// KillGroup sends SIGKILL to the process's group even after the process
// itself has exited, for descendants that outlived it. The group's ID
// cannot be reused while any of them lives.
func (p *Proc) KillGroup() {
	syscall.Kill(-p.ec.Process.Pid, syscall.SIGKILL)
}

// Stop ends the process for a stopping server: SIGTERM to the group, SIGKILL
// after grace, and waits for the exit.
func (p *Proc) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.ec.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.ec.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "BUS": syscall.SIGBUS, "CHLD": syscall.SIGCHLD,
	"CONT": syscall.SIGCONT, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP, "ILL": syscall.SIGILL,
	"INT": syscall.SIGINT, "IO": syscall.SIGIO, "IOT": syscall.SIGIOT, "KILL": syscall.SIGKILL,
	"PIPE": syscall.SIGPIPE, "PROF": syscall.SIGPROF, "QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV,
	"STOP": syscall.SIGSTOP, "SYS": syscall.SIGSYS, "TERM": syscall.SIGTERM, "TRAP": syscall.SIGTRAP,
	"TSTP": syscall.SIGTSTP, "TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU, "URG": syscall.SIGURG,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "VTALRM": syscall.SIGVTALRM, "WINCH": syscall.SIGWINCH,
	"XCPU": syscall.SIGXCPU, "XFSZ": syscall.SIGXFSZ,
}

// SignalNames lists the accepted signal names, sorted.
func SignalNames() []string {
	out := make([]string, 0, len(signals))
	for n := range signals {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ErrBadSignal is wrapped by errors about unknown signal names.
var ErrBadSignal = errors.New("unknown signal")

// ParseSignal accepts the seed's names (KILL, TERM, ...), with or without a
// SIG prefix, in any case.
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(name), "SIG")
	if s, ok := signals[n]; ok {
		return s, nil
	}
	return 0, fmt.Errorf("%w %q: want one of %s", ErrBadSignal, name, strings.Join(SignalNames(), ", "))
}

func signalName(s syscall.Signal) string {
	for n, v := range signals {
		if v == s && n != "IOT" {
			return n
		}
	}
	return fmt.Sprintf("signal %d", int(s))
}

// outputPipe makes the pipe of an output stream. Its buffer is raised to
// 1 MiB (as far as the system allows) so that the server moves output in
// large reads: with a 64 KiB pipe, a fast writer costs the server a system
// call for every few KiB. Back-pressure stays: a writer blocks once the
// pipe is full.
func outputPipe(name string) (ours, theirs *os.File, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("making %s pipe: %w", name, err)
	}
	if rc, err := r.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETPIPE_SZ, 1<<20) // best effort
		})
	}
	return r, w, nil
}
