package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"time"

	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/profile"
)

// profileChunk is the size of the chunks a profile is sent in.
const profileChunk = 256 << 10

func (v *serverService) Profile(req *api.ProfileRequest, ss api.Server_ProfileServer) error {
	r := profile.Request{Kind: req.GetKind(), For: time.Duration(req.GetNanos())}
	if err := r.Check(); err != nil {
		return fault.New(fault.BadRequest, err.Error())
	}
	p, err := v.s.localPath(req.GetPath())
	if err != nil {
		return err
	}
	// The profile is taken whole before any of it is sent, so that a
	// failure is told as one.
	var buf bytes.Buffer
	ctx := ss.Context()
	if len(p.Elems) == 0 {
		if err := profile.Write(ctx, &buf, r); err != nil {
			return profileErr("/"+v.s.id.String(), err)
		}
	} else {
		pe, err := v.s.procAt(req.GetPath())
		if err != nil {
			return err
		}
		if pe.control == "" {
			return fault.Errorf(fault.Precondition, "%s is not a worker of a circuit program: only workers (Spawn's) and servers serve profiles", req.GetPath())
		}
		if err := awaitControl(ctx, pe); err != nil {
			return err
		}
		if err := profile.Ask(ctx, pe.control, r, &buf); err != nil {
			return profileErr(req.GetPath(), err)
		}
	}
	for b := buf.Bytes(); len(b) > 0; {
		n := min(len(b), profileChunk)
		if err := ss.Send(&api.ProfileChunk{Data: b[:n]}); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// profileErr classes a failure to take a profile of what is at path.
func profileErr(path string, err error) error {
	if errors.Is(err, profile.ErrBusy) {
		return fault.Errorf(fault.Precondition, "profile of %s: %v", path, err)
	}
	return fault.Errorf(fault.Remote, "profile of %s: %v", path, err)
}

// controlWait bounds how long a profile waits for a worker just started to
// open its control socket.
const controlWait = 5 * time.Second

// awaitControl waits until the worker's control socket exists: a worker
// opens it as it starts, and may be asked for a profile before.
func awaitControl(ctx context.Context, pe *procElement) error {
	deadline := time.Now().Add(controlWait)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		if _, err := os.Stat(pe.control); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fault.Errorf(fault.Precondition, "worker %s has opened no control socket within %v (a program built without this version of package circuit has none)", pe.path, controlWait)
		}
		select {
		case <-pe.Done():
			return fault.Errorf(fault.Precondition, "worker %s has exited", pe.path)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
