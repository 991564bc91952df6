package proc

import (
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
)

// Cmd is what to run.
type Cmd struct {
	Path  string
	Args  []string
	Env   []string
	Dir   string
	Scrub bool
}

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
}

// ErrBusy is returned to a second concurrent client of a stream.
var ErrBusy = errors.New("already in use by another client")

// ErrClosed is returned for a stream that has ended.
var ErrClosed = errors.New("already closed")

// Proc is a running or exited process.
type Proc struct {
	cmd  Cmd
	ec   *exec.Cmd
	done chan struct{}

	mu      sync.Mutex
	stat    Stat
	streams map[string]*stream
	open    int           // output streams not yet ended
	drained chan struct{} // closed when stdout and stderr have both ended // "stdin", "stdout", "stderr"
}

// stream is one standard stream of the process, at the server's end.
type stream struct {
	name  string
	file  io.ReadWriteCloser // our end: a pipe for stdin, a socket for output
	busy  bool
	ended bool // stdin closed, or output discarded
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
	ec.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	p := &Proc{cmd: cmd, ec: ec, done: make(chan struct{}), streams: map[string]*stream{}, open: 2, drained: make(chan struct{})}
	var child []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	fail := func(err error) (*Proc, error) {
		closeAll(child)
		for _, s := range p.streams {
			s.file.Close()
		}
		return nil, err
	}
	for _, name := range []string{"stdin", "stdout", "stderr"} {
		if name == "stdin" {
			r, w, err := os.Pipe()
			if err != nil {
				return fail(fmt.Errorf("making stdin pipe: %w", err))
			}
			ec.Stdin = r
			child = append(child, r)
			p.streams[name] = &stream{name: name, file: w}
			continue
		}
		ours, theirs, err := outputPipe(name)
		if err != nil {
			return fail(err)
		}
		child = append(child, theirs)
		p.streams[name] = &stream{name: name, file: ours}
	}
	ec.Stdout, ec.Stderr = child[1], child[2]
	if err := ec.Start(); err != nil {
		return fail(err)
	}
	closeAll(child) // the child has its copies
	p.stat = Stat{Cmd: cmd, Phase: Running, PID: ec.Process.Pid, Started: time.Now(), ExitCode: -1}
	go p.wait()
	return p, nil
}

func (p *Proc) wait() {
	err := p.ec.Wait()
	now := time.Now()
	p.mu.Lock()
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

// Kind is "proc".
func (p *Proc) Kind() string { return "proc" }

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
	p.discardOutputs()
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

// discardOutputs makes sure nobody waits on unread output after a scrub.
func (p *Proc) discardOutputs() {
	for _, name := range []string{"stdout", "stderr"} {
		if err := p.claim(name); err == nil {
			go p.release(name, io.Discard, true)
		}
	}
	if err := p.claim("stdin"); err == nil {
		p.endStdin()
	}
}

func (p *Proc) claim(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.streams[name]
	if !ok {
		return fmt.Errorf("no stream %q: want stdin, stdout or stderr", name)
	}
	switch {
	case s.busy:
		return fmt.Errorf("%s %w", name, ErrBusy)
	case s.ended:
		return fmt.Errorf("%s %w", name, ErrClosed)
	}
	s.busy = true
	return nil
}

// release copies the rest of output stream name to w and then, or on a
// failing w, discards what remains.
func (p *Proc) release(name string, w io.Writer, discard bool) {
	s := p.streams[name]
	if !discard {
		_, err := copyOut(w, s.file)
		if err == nil { // EOF: the process closed it
			p.endOutput(s)
			return
		}
	}
	p.mu.Lock()
	s.ended = true
	p.mu.Unlock()
	io.Copy(io.Discard, s.file)
	p.endOutput(s)
}

func (p *Proc) endOutput(s *stream) {
	p.mu.Lock()
	s.ended, s.busy = true, false
	p.open--
	if p.open == 0 {
		close(p.drained)
	}
	p.mu.Unlock()
	s.file.Close()
}

// Drained is closed once stdout and stderr have both been read to the end
// or discarded.
func (p *Proc) Drained() <-chan struct{} { return p.drained }

func (p *Proc) endStdin() {
	s := p.streams["stdin"]
	p.mu.Lock()
	s.ended, s.busy = true, false
	p.mu.Unlock()
	s.file.Close()
}

// ClaimOutput reserves stdout or stderr for a reader that will call
// CopyOutput; it fails at once with ErrBusy or ErrClosed.
func (p *Proc) ClaimOutput(name string) error {
	if name != "stdout" && name != "stderr" {
		return fmt.Errorf("no output stream %q: want stdout or stderr", name)
	}
	return p.claim(name)
}

// CopyOutput copies a claimed output stream to w until the process closes
// it, or w fails (the reader went away): then the rest is discarded.
func (p *Proc) CopyOutput(name string, w io.Writer) { p.release(name, w, false) }

// ClaimStdin reserves stdin for one writer.
func (p *Proc) ClaimStdin() error { return p.claim("stdin") }

// CopyStdin copies r to the claimed stdin until r ends, then closes stdin.
func (p *Proc) CopyStdin(r io.Reader) error {
	s := p.streams["stdin"]
	_, err := io.Copy(s.file, r)
	p.endStdin()
	if err != nil && errors.Is(err, syscall.EPIPE) {
		return nil // the process does not read its stdin any more
	}
	return err
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

// copyBufs are the buffers output is copied through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyOut copies src to dst through a large pooled buffer.
func copyOut(dst io.Writer, src io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	return io.CopyBuffer(onlyWriter{dst}, onlyReader{src}, *buf)
}

// onlyWriter and onlyReader hide ReaderFrom and WriterTo, so that
// io.CopyBuffer uses the buffer given (the fast paths of pipes and sockets
// fall back to 32 KiB copies for a pipe into a socket).
type (
	onlyWriter struct{ io.Writer }
	onlyReader struct{ io.Reader }
)
