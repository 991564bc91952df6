package proc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/creack/pty"

	"github.com/circuit-project/circuit/internal/element/stdio"
)

// startTty starts ec on a new pseudo-terminal (Cmd.Tty): the process is
// the leader of a new session whose controlling terminal is the pty, so
// that the terminal's line discipline turns a typed Ctrl-C into SIGINT for
// its foreground group. Its stdin and stdout are the pty's master; its
// stderr goes to the terminal too, so the stderr stream is empty.
func startTty(p *Proc, ec *exec.Cmd) (*os.File, error) {
	rows, cols := p.cmd.Rows, p.cmd.Cols
	if rows == 0 || cols == 0 {
		rows, cols = 24, 80
	}
	attrs := &syscall.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: syscall.SIGKILL}
	master, err := pty.StartWithAttrs(ec, &pty.Winsize{Rows: rows, Cols: cols}, attrs)
	if err != nil {
		return nil, fmt.Errorf("starting on a pseudo-terminal: %w", err)
	}
	p.pty = master
	p.Streams = stdio.New(ttyInput{master}, ttyOutput{master}, io.NopCloser(strings.NewReader("")))
	return master, nil
}

// ttyInput is the pty master as the process's stdin. A client's EOF does
// not close it, which would end the session's output too; the terminal
// lives as long as the process.
type ttyInput struct{ f *os.File }

func (t ttyInput) Write(b []byte) (int, error) { return t.f.Write(b) }
func (t ttyInput) Close() error                { return nil }

// ttyOutput is the pty master as the process's stdout. Linux answers a
// read of a master whose last slave closed with EIO: that is the end.
type ttyOutput struct{ f *os.File }

func (t ttyOutput) Read(b []byte) (int, error) {
	n, err := t.f.Read(b)
	if err != nil && errors.Is(err, syscall.EIO) {
		err = io.EOF
	}
	return n, err
}

func (t ttyOutput) Close() error { return t.f.Close() }

// Resize sets the size of the process's terminal; the process gets
// SIGWINCH.
func (p *Proc) Resize(rows, cols uint16) error {
	if p.pty == nil {
		return errors.New("the process has no terminal (start it with Tty)")
	}
	if rows == 0 || cols == 0 {
		return fmt.Errorf("terminal size %dx%d: rows and columns must be positive", rows, cols)
	}
	return pty.Setsize(p.pty, &pty.Winsize{Rows: rows, Cols: cols})
}
