package server

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/element/proc"
	"github.com/circuit-project/circuit/internal/fault"
)

// readyWait bounds how long a respawn waits for the new worker to run its
// function; a worker waits as long for its request.
const readyWait = time.Minute

// Respawn replaces a running worker with a new one: see the proto.
func (v *procService) Respawn(ctx context.Context, req *api.RespawnRequest) (*api.RespawnReply, error) {
	s := v.s
	grace := time.Duration(req.GetGraceNanos())
	if grace < 0 || grace > maxKillGrace {
		return nil, fault.Errorf(fault.BadRequest, "a grace period of %v: want 0 to %v", grace, maxKillGrace)
	}
	old, err := s.procAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	switch {
	case old.grave == nil:
		return nil, fault.Errorf(fault.BadRequest, "%s is no worker that circuit.Spawn started", old.path)
	case old.spec.Stdin == nil:
		return nil, fault.Errorf(fault.Precondition, "worker %s was given its request on a stream (more than %d bytes, or by an older spawner), which the server did not keep: it cannot be respawned", old.grave.ID, proc.MaxStdin)
	}
	select {
	case <-old.Done():
		return nil, fault.Errorf(fault.Precondition, "worker %s has exited", old.grave.ID)
	default:
	}
	c := old.spec
	if sum := req.GetBinarySha256(); sum != "" {
		path, _, ok, err := s.bins.Stat(sum)
		if err != nil {
			return nil, binaryErr(err)
		}
		if !ok {
			return nil, fault.Errorf(fault.NotFound, "binary %s is not stored on this server: upload it first", sum)
		}
		c.Path = path
	}
	id := anchorfs.NewWorkerID()
	oldEnv := envWorker + "=" + old.grave.ID
	c.Env = slices.Clone(c.Env)
	if i := slices.Index(c.Env, oldEnv); i >= 0 {
		c.Env[i] = envWorker + "=" + id
	}
	p, err := anchor.Parse(old.path)
	if err != nil {
		return nil, fault.New(fault.Remote, err.Error())
	}
	p.Elems = append(slices.Clone(p.Elems[:len(p.Elems)-1]), id)
	pe, err := s.makeProc(p.String(), c, callerOf(ctx), opOf(ctx), spawned{parent: old.grave.Parent, replaces: old.grave.ID})
	if err != nil {
		return nil, err
	}
	if err := awaitReady(ctx, pe); err != nil {
		pe.Signal("KILL")
		return nil, fmt.Errorf("respawn %s: %w", old.grave.ID, err)
	}
	old.replacedBy.Store(&id)
	if err := s.stopWorkers(ctx, []*procElement{old}, grace); err != nil {
		return nil, err
	}
	rec, err := json.Marshal(pe.grave)
	if err != nil {
		return nil, fault.New(fault.Remote, err.Error())
	}
	return &api.RespawnReply{Worker: id, Path: pe.path, Serial: pe.serial, Record: rec}, nil
}

// awaitReady waits until a new worker runs its function. One that exits
// first, or is not ready within readyWait, is an error saying why.
func awaitReady(ctx context.Context, pe *procElement) error {
	t := time.NewTimer(readyWait)
	defer t.Stop()
	select {
	case <-pe.Ready():
		return nil
	case <-pe.Done():
		st := pe.Peek()
		msg := "the new worker " + pe.grave.ID + " ended before it ran its function: " + causeOf(st)
		pe.Settle("stderr", settleWithin)
		if tail := strings.TrimSpace(string(pe.Tail("stderr"))); tail != "" {
			msg += "; its stderr ends: " + lastLines(tail, 5)
		}
		return fault.New(fault.Precondition, msg)
	case <-t.C:
		return fault.Errorf(fault.Precondition, "the new worker %s did not run its function within %v (built against a circuit without respawn?)", pe.grave.ID, readyWait)
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// stopWorkers asks processes to stop and waits for them to be gone: with
// a grace period, SIGTERM (a worker's circuit.Context ends) and SIGKILL
// for those still running when it is over; without one, SIGKILL at once.
// It returns once each has exited and left the anchor file system, within
// killWait after the kill.
func (s *Server) stopWorkers(ctx context.Context, pes []*procElement, grace time.Duration) error {
	sig := "KILL" // fails only for a process that has exited
	if grace > 0 {
		sig = "TERM"
	}
	for _, pe := range pes {
		pe.Signal(sig)
	}
	if grace > 0 {
		deadline := time.NewTimer(grace)
		defer deadline.Stop()
	wait:
		for _, pe := range pes {
			select {
			case <-pe.Done():
			case <-deadline.C:
				for _, pe := range pes {
					pe.Signal("KILL")
				}
				break wait
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	for _, pe := range pes {
		if _, err := pe.Wait(ctx); err != nil {
			return status.FromContextError(err).Err()
		}
		<-pe.unlisted
	}
	return nil
}

// builds caches what the Go toolchain recorded in stored binaries, by
// digest: a stored binary never changes.
type builds struct {
	mu sync.Mutex
	at map[string]string
}

// maxBuilds bounds the cache; it is emptied when full.
const maxBuilds = 256

// of describes the build of the stored binary sum at path: its main
// module and version, VCS revision (+dirty when modified), Go version and
// -ldflags; "" when it is no Go binary.
func (b *builds) of(sum, path string) string {
	b.mu.Lock()
	d, ok := b.at[sum]
	b.mu.Unlock()
	if ok {
		return d
	}
	d = describeBuild(path)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.at == nil || len(b.at) >= maxBuilds {
		b.at = map[string]string{}
	}
	b.at[sum] = d
	return d
}

func describeBuild(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	parts := []string{bi.Main.Path, bi.Main.Version}
	set := map[string]string{}
	for _, kv := range bi.Settings {
		set[kv.Key] = kv.Value
	}
	if rev := set["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if set["vcs.modified"] == "true" {
			rev += "+dirty"
		}
		parts = append(parts, rev)
	}
	parts = append(parts, bi.GoVersion)
	if ld := set["-ldflags"]; ld != "" {
		const maxLd = 200
		if len(ld) > maxLd {
			ld = ld[:maxLd] + "…"
		}
		parts = append(parts, "ldflags="+ld)
	}
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), " ")
}
