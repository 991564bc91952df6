package circuit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/ident"
)

// Worker is a spawned worker: a process of this program on some server,
// running one function. It encodes as JSON, so it can be passed to another
// worker, which can then wait for it or kill it.
type Worker struct {
	id     string
	server string
	fn     string
	serial uint64         // 0 when not known: whatever process is at the anchor
	dirs   []string       // the directories it was spawned into
	c      *client.Client // nil when decoded: the process's client
}

// ID is the worker's ID: R and 16 hex digits, its file name in the anchor
// file system.
func (w *Worker) ID() string { return w.id }

// Server is the ID of the server the worker runs on.
func (w *Worker) Server() string { return w.server }

// Func is the name of the function the worker runs.
func (w *Worker) Func() string { return w.fn }

// Dirs are the anchor-file-system directories the worker is listed in.
func (w *Worker) Dirs() []string { return append([]string(nil), w.dirs...) }

// Anchor is the path of the worker's process element, /Xserver/Rworker.
func (w *Worker) Anchor() string { return "/" + w.server + "/" + w.id }

func (w *Worker) String() string { return w.id + " (" + w.fn + " on " + w.server + ")" }

func (w *Worker) proc() (*client.ProcHandle, error) {
	c := w.c
	if c == nil {
		var err error
		if c, err = Client(); err != nil {
			return nil, err
		}
	}
	return c.ProcAtSerial(w.Anchor(), w.serial), nil
}

// WorkerError says why a worker did not return its function's results:
// the function returned an error or panicked, or the worker died (killed,
// crashed) or could not run the function.
type WorkerError struct {
	Worker string // its ID
	Func   string
	Msg    string // the function's error, the panic, or how the process ended
	Panic  bool
	Died   bool // the process ended without reporting a result
}

func (e *WorkerError) Error() string {
	switch {
	case e.Panic:
		return fmt.Sprintf("worker %s (%s) panicked: %s", e.Worker, e.Func, e.Msg)
	case e.Died:
		return fmt.Sprintf("worker %s (%s) died: %s", e.Worker, e.Func, e.Msg)
	}
	return fmt.Sprintf("worker %s (%s): %s", e.Worker, e.Func, e.Msg)
}

// Wait waits for the worker to end and returns its function's results,
// decoded into the function's result types (without the trailing error),
// or the function's error. A worker that died, or whose host was lost,
// gives an error saying so (a *WorkerError, or a *client.HostLostError).
func (w *Worker) Wait(ctx context.Context) ([]any, error) {
	h, err := w.proc()
	if err != nil {
		return nil, err
	}
	st, err := h.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("waiting for worker %s: %w", w, err)
	}
	var o outcome
	if len(st.Result) == 0 || json.Unmarshal(st.Result, &o) != nil {
		msg := "it exited without reporting a result"
		if st.Exit != nil {
			msg = st.Exit.Error()
		}
		return nil, &WorkerError{Worker: w.id, Func: w.fn, Msg: msg, Died: true}
	}
	switch {
	case o.Failed != "":
		return nil, &WorkerError{Worker: w.id, Func: w.fn, Msg: o.Failed}
	case o.Panic != "":
		return nil, &WorkerError{Worker: w.id, Func: w.fn, Msg: o.Panic, Panic: true}
	}
	var results []any
	if info, err := lookupName(w.fn); err == nil {
		if results, err = info.decodeResults(o.Results); err != nil {
			return nil, err
		}
	} else {
		for _, r := range o.Results {
			results = append(results, r)
		}
	}
	if o.Error != "" {
		return results, &WorkerError{Worker: w.id, Func: w.fn, Msg: o.Error}
	}
	return results, nil
}

// Kill kills the worker (SIGKILL). Killing one that has ended already is
// not an error.
func (w *Worker) Kill(ctx context.Context) error {
	h, err := w.proc()
	if err != nil {
		return err
	}
	err = h.Signal(ctx, "KILL")
	if err != nil && (errors.Is(err, client.ErrNotFound) || strings.Contains(err.Error(), "has exited")) {
		return nil
	}
	return err
}

// Output connects to the worker's standard output ("stdout") or error
// ("stderr"). Read it to the end to see everything the worker wrote.
func (w *Worker) Output(ctx context.Context, name string) (io.ReadCloser, error) {
	if name != "stdout" && name != "stderr" {
		return nil, fmt.Errorf("worker output %q: want stdout or stderr", name)
	}
	h, err := w.proc()
	if err != nil {
		return nil, err
	}
	return h.OpenStream(ctx, name)
}

type workerJSON struct {
	ID     string
	Server string
	Func   string
	Serial uint64   `json:",omitempty"`
	Dirs   []string `json:",omitempty"`
}

// MarshalJSON encodes the worker as a reference to it.
func (w *Worker) MarshalJSON() ([]byte, error) {
	return json.Marshal(workerJSON{ID: w.id, Server: w.server, Func: w.fn, Serial: w.serial, Dirs: w.dirs})
}

// UnmarshalJSON decodes a reference to a worker; the decoded worker uses
// this process's client.
func (w *Worker) UnmarshalJSON(b []byte) error {
	var j workerJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if _, err := ident.ParseID(j.Server); err != nil {
		return fmt.Errorf("worker reference: %w", err)
	}
	if !anchorfs.IsWorkerID(j.ID) {
		return fmt.Errorf("worker reference: %q is not a worker ID", j.ID)
	}
	*w = Worker{id: j.ID, server: j.Server, fn: j.Func, serial: j.Serial, dirs: j.Dirs}
	return nil
}
