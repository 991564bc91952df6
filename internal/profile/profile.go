// Package profile owns the profiles that circuit pprof and circuit stk take
// of a live process: a server's own, or a worker's, which serves them on a
// control socket its server gave it (Serve; the server passes requests on).
//
// Nothing runs until a profile is asked for: the block and mutex profilers
// are on only while one is being taken, and a control socket is one
// goroutine blocked in accept. A process takes one CPU profile or trace at a
// time (the Go runtime allows no more), and every duration is bounded.
package profile

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"sync"
	"time"
)

// The kinds of profile.
const (
	CPU       = "cpu"       // for a duration, as go tool pprof reads it
	Heap      = "heap"      // live objects now
	Goroutine = "goroutine" // every goroutine's stack, as pprof reads it
	Block     = "block"     // blocking, recorded for a duration
	Mutex     = "mutex"     // contention, recorded for a duration
	Trace     = "trace"     // an execution trace for a duration, for go tool trace
	Stacks    = "stacks"    // every goroutine's stack as text (circuit stk)
)

// Bounds of the durations.
const (
	MaxDuration     = 2 * time.Minute
	DefaultRecord   = 5 * time.Second // block and mutex, when no duration is given
	blockRate       = 10000           // nanoseconds of blocking per sample
	mutexFraction   = 5               // one contention event in so many
	maxStacksBuffer = 64 << 20
)

// Request asks for one profile.
type Request struct {
	Kind string
	For  time.Duration `json:",omitempty"` // cpu, trace, block, mutex
}

// Check checks a request and fills in its default duration.
func (r *Request) Check() error {
	switch r.Kind {
	case CPU, Trace:
		if r.For <= 0 {
			return fmt.Errorf("a %s profile needs a duration", r.Kind)
		}
	case Block, Mutex:
		if r.For == 0 {
			r.For = DefaultRecord
		}
	case Heap, Goroutine, Stacks:
		r.For = 0
	default:
		return fmt.Errorf("no profile %q: the profiles are cpu, heap, goroutine, block, mutex and trace", r.Kind)
	}
	if r.For < 0 || r.For > MaxDuration {
		return fmt.Errorf("a profile lasts at most %v, not %v", MaxDuration, r.For)
	}
	return nil
}

// running guards the one CPU profile or trace a process takes at a time.
var running sync.Mutex

// ErrBusy is returned when a CPU profile or a trace is being taken already.
var ErrBusy = errors.New("a CPU profile or trace of this process is being taken already: one at a time")

// Write takes the profile r asks for of this process and writes it to w,
// ending early (with what it has) when ctx ends.
func Write(ctx context.Context, w io.Writer, r Request) error {
	if err := r.Check(); err != nil {
		return err
	}
	switch r.Kind {
	case CPU, Trace:
		if !running.TryLock() {
			return ErrBusy
		}
		defer running.Unlock()
		start, stop := pprof.StartCPUProfile, pprof.StopCPUProfile
		if r.Kind == Trace {
			start, stop = trace.Start, trace.Stop
		}
		if err := start(w); err != nil {
			return err
		}
		wait(ctx, r.For)
		stop()
		return nil
	case Block, Mutex:
		if r.Kind == Block {
			runtime.SetBlockProfileRate(blockRate)
			defer runtime.SetBlockProfileRate(0)
		} else {
			runtime.SetMutexProfileFraction(mutexFraction)
			defer runtime.SetMutexProfileFraction(0)
		}
		wait(ctx, r.For)
		return pprof.Lookup(r.Kind).WriteTo(w, 0)
	case Stacks:
		_, err := w.Write(stacks())
		return err
	}
	return pprof.Lookup(r.Kind).WriteTo(w, 0)
}

func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// stacks is every goroutine's stack as text.
func stacks() []byte {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= maxStacksBuffer {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Serve answers profile requests on ln until it is closed: the control
// socket of a worker. Each connection carries one request, a JSON line;
// the answer is a line, "ok" or "error: MSG", then the profile until the
// connection ends. A closed connection ends a profile early.
func Serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serveOne(c)
	}
}

func serveOne(c net.Conn) {
	defer c.Close()
	var r Request
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &r)
	}
	if err == nil {
		err = r.Check()
	}
	if err != nil {
		fmt.Fprintf(c, "error: %v\n", err)
		return
	}
	// The connection's end (the asker went) ends the profile early.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, c)
		cancel()
	}()
	var buf bufferedAnswer
	if err := Write(ctx, &buf, r); err != nil {
		fmt.Fprintf(c, "error: %v\n", err)
		return
	}
	io.WriteString(c, "ok\n")
	c.Write(buf.b)
}

// bufferedAnswer holds a profile until it is whole, so that a failure is
// told before any of it is sent.
type bufferedAnswer struct{ b []byte }

func (a *bufferedAnswer) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// Ask asks the control socket at path for a profile and copies it to w.
func Ask(ctx context.Context, path string, r Request, w io.Writer) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("the worker's control socket: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	b, _ := json.Marshal(r)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("the worker's control socket: %w", err)
	}
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("the worker's answer: %w", err)
	}
	if status != "ok\n" {
		msg := strings.TrimPrefix(strings.TrimSuffix(status, "\n"), "error: ")
		if msg == ErrBusy.Error() {
			return ErrBusy // the worker's own, told as text
		}
		return errors.New(msg)
	}
	_, err = io.Copy(w, br)
	return err
}
