package client

import (
	"context"
	"io"
)

// Proc is a process element in the seeds' style: methods panic with
// *HostLostError or *DialinLostError when the connection is lost.
type Proc interface {
	// Stdin is the process's standard input; Close sends EOF.
	Stdin() io.WriteCloser
	// Stdout is the process's standard output, until the process closes it.
	// Closing it discards the rest.
	Stdout() io.ReadCloser
	// Stderr is like Stdout, for standard error.
	Stderr() io.ReadCloser
	// Wait blocks until the process exits and returns its final state.
	Wait() (ProcStat, error)
	// Signal sends a signal by name (KILL, TERM, INT, ...) to the process
	// group.
	Signal(sig string) error
	// Peek describes the process without blocking.
	Peek() ProcStat
	// GetCmd is the command the process runs.
	GetCmd() Cmd
	// IsDone reports whether the process has exited.
	IsDone() bool
	// Scrub kills the process and removes the element.
	Scrub()
}

type seedProc struct {
	h                     *ProcHandle
	stdin, stdout, stderr *lazyStream
}

func newSeedProc(h *ProcHandle) *seedProc {
	p := &seedProc{h: h}
	p.stdin, p.stdout, p.stderr = streams(h.path, h.OpenStream)
	return p
}

// Proc returns the seeds'-style view of the process.
func (h *ProcHandle) Proc() Proc { return newSeedProc(h) }

func (p *seedProc) Stdin() io.WriteCloser { return p.stdin }
func (p *seedProc) Stdout() io.ReadCloser { return p.stdout }
func (p *seedProc) Stderr() io.ReadCloser { return p.stderr }

func (p *seedProc) Wait() (ProcStat, error) {
	st, err := p.h.Wait(context.Background())
	if lost(err) {
		panic(err)
	}
	return st, err
}

func (p *seedProc) Signal(sig string) error {
	err := p.h.Signal(context.Background(), sig)
	if lost(err) {
		panic(err)
	}
	return err
}

func (p *seedProc) Peek() ProcStat {
	st, err := p.h.Peek(context.Background())
	if lost(err) {
		panic(err)
	}
	if err != nil {
		// Gone since (scrubbed): report it as exited, with what we know.
		return ProcStat{Cmd: p.h.cmd, Phase: "exited", ExitCode: -1}
	}
	return st
}

func (p *seedProc) GetCmd() Cmd {
	if p.h.cmd.Path != "" {
		return p.h.cmd
	}
	return p.Peek().Cmd
}

func (p *seedProc) IsDone() bool { return p.Peek().Phase == "exited" }

func (p *seedProc) Scrub() {
	if err := p.h.c.ScrubAt(context.Background(), p.h.path); lost(err) {
		panic(err)
	}
}

// lost tells the connection failures that the seeds' style panics with.
func lost(err error) bool {
	switch err.(type) {
	case *HostLostError, *DialinLostError, *AuthError:
		return true
	}
	return false
}
