package server

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/element/proc"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/graveyard"
)

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// envWorker names a worker in its environment (package circuit's).
const envWorker = "CIRCUIT_WORKER"

// settleWithin bounds how long a worker's record waits for the rest of its
// stderr after it exited (a descendant may hold the pipe open).
const settleWithin = 100 * time.Millisecond

// graveDraft begins the record of a worker about to start at the anchor
// path (named by its worker ID), for who. A worker is what Spawn starts:
// its environment names it (CIRCUIT_WORKER), its function is its first
// argument, and its binary's digest is its stored file's name. It is nil
// for a process that is no worker.
func (s *Server) graveDraft(path, id string, c proc.Cmd, who caller) *graveyard.Record {
	if !anchorfs.IsWorkerID(id) || len(c.Args) == 0 || !slices.Contains(c.Env, envWorker+"="+id) {
		return nil
	}
	r := &graveyard.Record{ID: id, Func: c.Args[0], Server: s.id.String(), Anchor: path, Dirs: c.Dirs, Start: time.Now()}
	r.Binary = storedDigest(c.Path)
	r.Parent = parentOf(who)
	return r
}

// storedDigest is the SHA-256 of a binary from the store (its file is
// named by it), or "".
func storedDigest(path string) string {
	if base := filepath.Base(path); sha256Hex.MatchString(base) {
		return base
	}
	return ""
}

// parentOf names who spawned a worker: a worker, by its ID, or a client by
// its credential (or the key) and address.
func parentOf(who caller) string {
	switch {
	case who.claims != nil && who.claims.Worker != "":
		return who.claims.Worker
	case who.from != "":
		return "client " + who.String() + " at " + who.from
	}
	return "client " + who.String()
}

// workerOutcome is what a worker writes on its result pipe (package
// circuit's outcome).
type workerOutcome struct {
	Error, Panic, Failed string
}

// causeOf says why a worker ended, from its status.
func causeOf(st proc.Stat) string {
	var o workerOutcome
	if len(st.Result) > 0 {
		json.Unmarshal(st.Result, &o)
	}
	firstLine := func(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }
	switch {
	case st.Signal != "":
		return "signal " + st.Signal
	case o.Panic != "":
		return "panic: " + firstLine(o.Panic)
	case o.Failed != "":
		return "failed: " + o.Failed
	case o.Error != "":
		return "error: " + o.Error
	case st.ExitCode == 0:
		return "returned"
	}
	return fmt.Sprintf("exit %d", st.ExitCode)
}

// bury records a worker's end: at its exit, with its stderr so far, and
// again once its output is drained, with the whole tail.
func (s *Server) bury(pe *procElement, st proc.Stat) {
	if pe.grave == nil {
		return
	}
	r := *pe.grave
	r.End, r.Cause = st.Exited, causeOf(st)
	if by := pe.replacedBy.Load(); by != nil {
		r.Cause = "replaced by " + *by
	}
	if r.End.IsZero() {
		r.End = time.Now()
	}
	pe.Settle("stderr", settleWithin) // its unread stderr reaches the tail, and stays readable
	r.Stderr = string(pe.Tail("stderr"))
	pe.grave = &r
	if err := s.yard.Put(r); err != nil {
		s.log.Error("graveyard", "worker", r.ID, "err", err)
	}
}

// reburied completes a worker's record with the stderr drained since its exit.
func (s *Server) reburied(pe *procElement) {
	if pe.grave == nil {
		return
	}
	if tail := string(pe.Tail("stderr")); tail != pe.grave.Stderr {
		r := *pe.grave
		r.Stderr = tail
		if err := s.yard.Put(r); err != nil {
			s.log.Error("graveyard", "worker", r.ID, "err", err)
		}
	}
}

func (v *dirsService) Graveyard(_ context.Context, req *api.DirsRequest) (*api.GraveyardReply, error) {
	q, err := v.s.dirsQuery(req)
	if err != nil {
		return nil, err
	}
	if q.File != "" {
		return nil, fault.Errorf(fault.BadRequest, "graveyard lists a directory, not a worker's file: %s", req.GetPath())
	}
	in := func(d string) bool {
		dir, err := anchorfs.ParseDir(d)
		if err != nil {
			return false
		}
		if q.Recursive {
			return len(dir) >= len(q.Dir) && slices.Equal(dir[:len(q.Dir)], q.Dir)
		}
		return slices.Equal(dir, q.Dir)
	}
	recs := v.s.yard.List(func(r graveyard.Record) bool {
		return len(q.Dir) == 0 || slices.ContainsFunc(r.Dirs, in)
	})
	out := &api.GraveyardReply{}
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fault.Errorf(fault.Remote, "encoding record %s: %v", r.ID, err)
		}
		out.Records = append(out.Records, b)
	}
	return out, nil
}
