package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/label"
	"github.com/circuit-project/circuit/internal/wire"
)

// RunAnchor is the anchor under each server where Run starts its
// processes: /Xid/circuit-run/<run ID>, scrubbed when the process is done.
const RunAnchor = "circuit-run"

// Stream names a process's output stream in RunOptions.OnLine.
type Stream int

const (
	Stdout Stream = 1
	Stderr Stream = 2
)

// RunOptions tunes Run.
type RunOptions struct {
	// Selector chooses the servers by label (role=db,zone in (a,b)); ""
	// chooses every server.
	Selector string
	// Fanout bounds the servers running the command at once; 0 is no
	// bound.
	Fanout int
	// Timeout bounds each server's run, from the start of its process;
	// 0 is no bound. A process still running then is killed.
	Timeout time.Duration
	// Stdin, when not nil, is written to every copy's standard input,
	// which is then closed. When nil, standard input is closed at once.
	Stdin []byte
	// OnLine, when set, is called with each whole line of output (its
	// newline included; the last line of a stream may lack one) as it
	// arrives, one call at a time.
	OnLine func(server string, s Stream, line []byte)
}

// RunResult is one server's part of a Run.
type RunResult struct {
	Server string
	// ExitCode is the process's exit code (128+signal when a signal
	// killed it), or -1 when it did not exit: see Err.
	ExitCode int
	Stdout   []byte
	Stderr   []byte
	// Err is nil when the process ran and exited, whatever its code; it
	// says why otherwise: the server vanished, the run timed out (an
	// ErrTimeout), or the process could not start.
	Err error
}

// ErrTimeout is RunResult.Err for a run cut short by RunOptions.Timeout.
var ErrTimeout = errors.New("timed out")

// Select lists the servers whose labels match a selector (see RunOptions),
// sorted by ID.
func (c *Client) Select(ctx context.Context, selector string) ([]Member, error) {
	sel, err := label.Parse(selector)
	if err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	members, err := c.members(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(members, func(m Member) bool { return !sel.Matches(selectable(m)) }), nil
}

// selectable is what a selector sees of a member: its labels, and its
// datacenter as the label dc.
func selectable(m Member) label.Set {
	if m.DC == "" {
		return m.Labels
	}
	s := maps.Clone(m.Labels)
	if s == nil {
		s = label.Set{}
	}
	s[label.DC] = m.DC
	return s
}

// Run runs cmd on every server that opt.Selector chooses, at most
// opt.Fanout at once, and returns each server's result, sorted by server
// ID. Each copy is a process element at /Xid/circuit-run/<ID> (RunAnchor),
// removed once it is done (by its server, moments after Run returns, for a
// copy that exited). Run's error is for the whole run (a bad
// selector, no dial-in server); each server's failure is in its result.
func (c *Client) Run(ctx context.Context, cmd Cmd, opt RunOptions) ([]RunResult, error) {
	if cmd.Path == "" {
		return nil, fault.New(fault.BadRequest, "run: no command")
	}
	var idb [8]byte
	rand.Read(idb[:])
	runID := hex.EncodeToString(idb[:])
	spec, err := json.Marshal(wire.RunSpec{Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir, Stdin: opt.Stdin != nil, Timeout: opt.Timeout, Selector: opt.Selector})
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	if len(spec) > wire.MaxFrame {
		return nil, fault.New(fault.BadRequest, fmt.Sprintf("run: the command is %d bytes long, limit %d", len(spec), wire.MaxFrame))
	}
	specFrame := wire.AppendFrame(nil, wire.FrameSpec, spec)
	servers, err := c.Select(ctx, opt.Selector)
	if err != nil {
		return nil, err
	}

	var emit func(string, Stream, []byte)
	if opt.OnLine != nil {
		var mu sync.Mutex
		emit = func(server string, s Stream, line []byte) {
			mu.Lock()
			defer mu.Unlock()
			opt.OnLine(server, s, line)
		}
	}
	fanout := opt.Fanout
	if fanout <= 0 || fanout > len(servers) {
		fanout = len(servers)
	}
	results := make([]RunResult, len(servers))
	sem := make(chan struct{}, max(fanout, 1))
	var wg sync.WaitGroup
	for i, m := range servers {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for j := i; j < len(servers); j++ {
				results[j] = RunResult{Server: servers[j].ID, ExitCode: -1, Err: ctx.Err()}
			}
			wg.Wait()
			return results, nil
		}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = c.runOn(ctx, m.ID, "/"+m.ID+"/"+RunAnchor+"/"+runID, specFrame, opt, emit)
		})
	}
	wg.Wait()
	return results, nil
}

// runOn runs one copy at path, on one run stream (wire.RunSpec): the
// server makes the process, sends its output and exit, and removes it; a
// copy cut short (a timeout) is killed by its server when the stream
// closes.
func (c *Client) runOn(ctx context.Context, server, path string, specFrame []byte, opt RunOptions, emit func(string, Stream, []byte)) RunResult {
	res := RunResult{Server: server, ExitCode: -1}
	if opt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opt.Timeout)
		defer cancel()
	}
	conn, err := c.openStreamHeader(ctx, wire.StreamHeader{Path: path, Stream: "run"}, specFrame)
	if err != nil {
		res.Err = c.runErr(ctx, err)
		return res
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	fw := wire.NewFrameWriter(conn)
	var feeding sync.WaitGroup
	defer feeding.Wait() // ends once the connection is closed, at the latest
	defer conn.Close()
	if opt.Stdin != nil {
		// Fed while the output is read: a copy may answer before it has
		// read all its input.
		feeding.Go(func() {
			for in := opt.Stdin; len(in) > 0; in = in[min(len(in), 64<<10):] {
				if fw.Write(wire.FrameStdin, in[:min(len(in), 64<<10)]) != nil {
					return
				}
			}
			fw.Write(wire.FrameStdinEnd, nil)
		})
	}

	out := [2]lineSplitter{{server: server, stream: Stdout, into: &res.Stdout, emit: emit}, {server: server, stream: Stderr, into: &res.Stderr, emit: emit}}
	r := bufio.NewReaderSize(conn, 64<<10)
	var buf []byte
	for {
		tag, p, grown, err := wire.ReadFrame(r, buf)
		buf = grown
		if err != nil {
			if ctx.Err() != nil {
				res.Err = c.runErr(ctx, ctx.Err())
			} else {
				res.Err = err
				if id, perr := ident.ParseID(server); perr == nil {
					res.Err = c.streamErr(ctx, id, err) // names a lost host as such
				}
			}
			break
		}
		switch tag {
		case wire.FrameStdout:
			out[0].write(p)
			continue
		case wire.FrameStderr:
			out[1].write(p)
			continue
		case wire.FrameExit:
			var x wire.RunExit
			if err := json.Unmarshal(p, &x); err != nil {
				res.Err = fmt.Errorf("the server sent a bad exit frame: %w", err)
			} else {
				res.ExitCode = x.ExitCode
			}
		default:
			res.Err = fmt.Errorf("the server sent an unknown frame %q", tag)
		}
		break
	}
	out[0].flush()
	out[1].flush()
	return res
}

// lineSplitter collects one output stream of a run and hands it on in
// whole lines; a line longer than maxLine goes out in pieces.
type lineSplitter struct {
	server  string
	stream  Stream
	into    *[]byte
	emit    func(string, Stream, []byte)
	pending []byte
}

const maxLine = 64 << 10

func (l *lineSplitter) write(p []byte) {
	*l.into = append(*l.into, p...)
	if l.emit == nil {
		return
	}
	l.pending = append(l.pending, p...)
	for {
		i := bytes.IndexByte(l.pending, '\n')
		if i < 0 && len(l.pending) < maxLine {
			break
		}
		n := maxLine
		if i >= 0 {
			n = min(i+1, maxLine)
		}
		l.emit(l.server, l.stream, bytes.Clone(l.pending[:n]))
		l.pending = l.pending[n:]
	}
}

// flush hands on a last line that had no newline.
func (l *lineSplitter) flush() {
	if l.emit != nil && len(l.pending) > 0 {
		l.emit(l.server, l.stream, l.pending)
		l.pending = nil
	}
}

// runErr names a context's end as such: a timeout rather than the error of
// the call it cut short.
func (c *Client) runErr(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return err
}
