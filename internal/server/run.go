package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/element/proc"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/oplog"
	"github.com/circuit-project/circuit/internal/wire"
)

// runLinger is how long a run stream, its exit sent, waits for the client
// to close first: a server closing with the client's input unread would
// reset the connection, and the reset can overtake the exit frame.
const runLinger = 5 * time.Second

// serveRun serves a run stream (wire.RunSpec): it makes the process at
// h.Path with Cmd.Scrub, sends its output and its exit as frames, and
// feeds it the client's stdin frames. A client that goes away before the
// exit frame takes the process with it.
// runStart is the start of a run stream: its reader and its command, or
// what was wrong with it.
type runStart struct {
	r    *bufio.Reader
	spec *wire.RunSpec
	err  error
}

// readRunSpec reads the command that begins a run stream (its header read
// already). The connection's deadline bounds it.
func readRunSpec(conn net.Conn) *runStart {
	rs := &runStart{r: bufio.NewReader(conn)}
	tag, b, _, err := wire.ReadFrame(rs.r, nil)
	var spec *wire.RunSpec
	if err == nil && tag == wire.FrameSpec {
		err = json.Unmarshal(b, &spec)
	}
	if err != nil || tag != wire.FrameSpec || spec == nil || spec.Path == "" {
		msg := fmt.Sprintf("a run stream starts with its command (a frame %q holding a RunSpec with a Path)", wire.FrameSpec)
		if err != nil {
			msg += ": " + err.Error()
		}
		rs.err = fault.New(fault.BadRequest, msg)
		return rs
	}
	rs.spec = spec
	return rs
}

// runWhat is what a run's records say of its command: the fields the table
// of operations names for Stream.run.
func runWhat(spec *wire.RunSpec) map[string]any {
	w := map[string]any{"cmd.path": spec.Path}
	if len(spec.Args) > 0 {
		w["cmd.args"] = spec.Args
	}
	if spec.Dir != "" {
		w["cmd.dir"] = spec.Dir
	}
	if spec.Selector != "" {
		w["selector"] = spec.Selector
	}
	return w
}

func (s *Server) serveRun(conn net.Conn, rs *runStart, h wire.StreamHeader, op *oplog.Op, who caller) {
	if rs.err != nil {
		s.refused(conn, rs.err.Error())
		refuseStream(conn, op, rs.err)
		return
	}
	r, spec := rs.r, rs.spec
	pe, err := s.makeProc(h.Path, proc.Cmd{Path: spec.Path, Args: spec.Args, Env: spec.Env, Dir: spec.Dir, Scrub: true, NoStdin: !spec.Stdin}, who, op, spawned{})
	if err != nil {
		refuseStream(conn, op, err)
		return
	}
	// Nobody else has the process's path yet, but a reader that guessed it
	// could claim a stream first: then the run is refused, and the streams
	// it had claimed are drained.
	var claimed []string
	for _, name := range []string{"stdin", "stdout", "stderr"} {
		if (name == "stdin" && !spec.Stdin) || pe.claim(name) == nil {
			claimed = append(claimed, name)
			continue
		}
		// Scrub kills the group, so the drained outputs end soon; the
		// drains are joined before the handler returns.
		pe.Scrub()
		var drains sync.WaitGroup
		for _, c := range claimed {
			switch {
			case c != "stdin":
				drains.Go(func() { pe.CopyOutput(c, io.Discard) })
			case spec.Stdin:
				pe.CopyStdin(eofReader{})
			}
		}
		refuseStream(conn, op, fault.Errorf(fault.Precondition, "%s of %s is already taken", name, h.Path))
		drains.Wait()
		return
	}
	conn.SetDeadline(time.Time{})
	answered := wire.WriteStatus(conn, nil) == nil

	fw := wire.NewFrameWriter(conn)
	var outputs, inputs sync.WaitGroup
	outputs.Go(func() { pe.CopyOutput("stdout", fw.Tagged(wire.FrameStdout)) })
	outputs.Go(func() { pe.CopyOutput("stderr", fw.Tagged(wire.FrameStderr)) })
	outputsDone := make(chan struct{})
	go func() { // owned here: every return below waits for it
		outputs.Wait()
		close(outputsDone)
	}()
	var stdin *io.PipeWriter
	var stdinR *io.PipeReader
	if spec.Stdin {
		stdinR, stdin = io.Pipe()
		inputs.Go(func() {
			pe.CopyStdin(stdinR)
			stdinR.Close() // input the process no longer takes is dropped
		})
	}
	gone := make(chan error, 1)
	inputs.Go(func() { gone <- readRunInput(r, stdin) })

	var timeout <-chan time.Time
	if spec.Timeout > 0 {
		t := time.NewTimer(spec.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	// A run cut short sends no more frames (the output copies then fail
	// and drain what is left) and kills the process's group, descendants
	// that outlived it included: they may hold its output open.
	var cut error
	cutShort := func(err error) {
		cut = err
		conn.SetWriteDeadline(time.Now())
		pe.Scrub()
		pe.KillGroup()
	}
	if !answered {
		cutShort(errors.New("the client went away"))
	}
	// The run is over when the process has exited and its outputs have
	// ended; until then, the client's going and the timeout are watched.
	exited, drained := pe.Done(), (<-chan struct{})(outputsDone)
	for cut == nil && (exited != nil || drained != nil) {
		select {
		case <-exited:
			exited = nil
		case <-drained:
			drained = nil
		case err := <-gone:
			gone <- err // for the wait below
			cutShort(fmt.Errorf("the client went away: %w", err))
		case <-timeout:
			cutShort(fmt.Errorf("timed out after %v", spec.Timeout))
		}
	}
	<-pe.Done()
	<-outputsDone
	if cut == nil {
		st := pe.Peek()
		if err := fw.WriteJSON(wire.FrameExit, wire.RunExit{ExitCode: st.ExitCode, Signal: st.Signal, Exit: st.Exit}); err != nil {
			cut = fmt.Errorf("sending the exit: %w", err)
		} else {
			linger := time.NewTimer(runLinger)
			select {
			case err := <-gone:
				gone <- err
			case <-linger.C:
			case <-s.ctx.Done():
			}
			linger.Stop()
		}
		op.End(cut)
	} else {
		op.End(cut)
		s.log.Info("run cut short", slog.String("path", h.Path), slog.String("why", cut.Error()))
	}
	conn.Close() // ends readRunInput
	if spec.Stdin {
		// A descendant may hold stdin open without reading it: the input
		// still on its way is dropped.
		stdinR.CloseWithError(net.ErrClosed)
		pe.AbortStdin()
	}
	inputs.Wait()
}

// readRunInput reads the client's frames, passing stdin to the process,
// until the connection ends; it returns why it did.
func readRunInput(r io.Reader, stdin *io.PipeWriter) error {
	var buf []byte
	for {
		tag, p, grown, err := wire.ReadFrame(r, buf)
		buf = grown
		if err == nil {
			switch {
			case tag == wire.FrameStdin && stdin != nil:
				stdin.Write(p) // fails once the process stops taking it
				continue
			case tag == wire.FrameStdinEnd && stdin != nil:
				stdin.Close()
				stdin = nil
				continue
			default:
				err = fmt.Errorf("%w: unexpected frame %q", wire.ErrBadPreamble, tag)
			}
		}
		if stdin != nil {
			stdin.CloseWithError(err)
		}
		return err
	}
}

// claim reserves one of the process's standard streams by name.
func (pe *procElement) claim(name string) error {
	if name == "stdin" {
		return pe.ClaimStdin()
	}
	return pe.ClaimOutput(name)
}
