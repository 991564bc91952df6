package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/label"
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
		return nil, classify(ErrBadRequest, err.Error())
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
		return nil, classify(ErrBadRequest, "run: no command")
	}
	servers, err := c.Select(ctx, opt.Selector)
	if err != nil {
		return nil, err
	}
	var idb [8]byte
	rand.Read(idb[:])
	runID := hex.EncodeToString(idb[:])
	// Scrub: the server removes the element itself once the process has
	// exited and its output has been read, sparing a call per copy; the
	// handle's serial still finds its exit status and output after that.
	cmd.Scrub, cmd.Dirs, cmd.Result = true, nil, false
	cmd.NoStdin = opt.Stdin == nil

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
			results[i] = c.runOn(ctx, m.ID, "/"+m.ID+"/"+RunAnchor+"/"+runID, cmd, opt, emit)
		})
	}
	wg.Wait()
	return results, nil
}

// runOn runs one copy at path and cleans up after it.
func (c *Client) runOn(ctx context.Context, server, path string, cmd Cmd, opt RunOptions, emit func(string, Stream, []byte)) RunResult {
	res := RunResult{Server: server, ExitCode: -1}
	if opt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opt.Timeout)
		defer cancel()
	}
	h, err := c.MakeProcAt(ctx, path, cmd)
	if err != nil {
		res.Err = c.runErr(ctx, err)
		return res
	}
	// A copy that did not run to its exit (a timeout, a lost stream) is
	// scrubbed here, which kills its process group; one that exited is
	// removed by its server (Cmd.Scrub). A vanished server has nothing
	// left to scrub.
	defer func() {
		if res.ExitCode >= 0 {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		c.ScrubAt(cctx, path)
	}()

	var wg sync.WaitGroup
	var outErr error
	var outMu sync.Mutex
	for _, s := range []struct {
		name   string
		stream Stream
		into   *[]byte
	}{{"stdout", Stdout, &res.Stdout}, {"stderr", Stderr, &res.Stderr}} {
		wg.Go(func() {
			err := c.collect(ctx, h, s.name, func(line []byte) {
				*s.into = append(*s.into, line...)
				if emit != nil {
					emit(server, s.stream, line)
				}
			})
			if err != nil {
				outMu.Lock()
				outErr = errors.Join(outErr, err)
				outMu.Unlock()
			}
		})
	}
	if opt.Stdin != nil {
		if err := c.feed(ctx, h, opt.Stdin); err != nil {
			res.Err = c.runErr(ctx, err)
		}
	}
	st, err := h.Wait(ctx)
	wg.Wait()
	switch {
	case err != nil:
		res.Err = c.runErr(ctx, err)
	case res.Err != nil:
	case outErr != nil:
		res.Err = c.runErr(ctx, outErr)
		res.ExitCode = st.ExitCode
	default:
		res.ExitCode = st.ExitCode
	}
	return res
}

// runErr names a context's end as such: a timeout rather than the error of
// the call it cut short.
func (c *Client) runErr(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return err
}

// feed writes data to the process's stdin and closes it.
func (c *Client) feed(ctx context.Context, h *ProcHandle, data []byte) error {
	conn, err := h.OpenStream(ctx, "stdin")
	if err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if len(data) > 0 {
		if _, err := conn.Write(data); err != nil {
			conn.Close()
			return fmt.Errorf("stdin: %w", err)
		}
	}
	return closeStdin(conn)
}

// collect reads one output stream to its end, line by line.
func (c *Client) collect(ctx context.Context, h *ProcHandle, name string, line func([]byte)) error {
	conn, err := h.OpenStream(ctx, name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		b, err := r.ReadSlice('\n')
		if len(b) > 0 {
			line(bytes.Clone(b))
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
			continue // a line longer than the buffer goes out in pieces
		case errors.Is(err, io.EOF):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}
