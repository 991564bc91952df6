package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/element/proc"
	"github.com/circuit-project/circuit/internal/element/stdio"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/graveyard"
	"github.com/circuit-project/circuit/internal/kind"
	"github.com/circuit-project/circuit/internal/oplog"
)

// procElement is a process attached to an anchor.
type procElement struct {
	*proc.Proc
	serial uint64
	path   string // its anchor, as anchor.Path.String gives it
	// worker is the anchor's name when the process is listed in the anchor
	// file system (Cmd.Dirs); unlisted is closed once its files are gone.
	worker   string
	unlisted chan struct{}
	// op is the operation that started it, under whose number its exit
	// is recorded; nil for none.
	op *oplog.Op
	// control is the path of a worker's control socket (profile.Serve),
	// "" for other processes.
	control string
	// grave is a worker's record for the graveyard, begun when it
	// started; nil for other processes.
	grave *graveyard.Record
	// spec is the command as asked for, before the server added to its
	// environment: what a respawn starts again.
	spec proc.Cmd
	// replacedBy is the ID of the worker that replaced this one (Respawn),
	// set before it is asked to stop; "" for none.
	replacedBy atomic.Pointer[string]
}

// envReady names a worker's ready descriptor in its environment.
const envReady = "CIRCUIT_READY"

// spawned is what a process's maker knows of its place among workers.
type spawned struct {
	parent   string // its graveyard record's parent, when not its maker
	replaces string // the worker it replaces (Respawn)
}

// envControl names a worker's control socket in its environment.
const envControl = "CIRCUIT_CONTROL"

// tomb keeps the final status of processes removed by Cmd.Scrub, so that a
// client that started one can still Wait for it. It is bounded in size and
// age. An entry is found by its anchor and serial together: serials are
// counted, so a serial alone must not reach another anchor's process.
type tomb struct {
	mu    sync.Mutex
	stats map[uint64]tombEntry
}

type tombEntry struct {
	path string
	stat proc.Stat
	at   time.Time
	pe   *procElement // while its output may still be read (Cmd.Scrub)
}

const (
	tombMax = 4096
	tombAge = 10 * time.Minute
)

func (t *tomb) put(path string, serial uint64, st proc.Stat, pe *procElement) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stats == nil {
		t.stats = map[uint64]tombEntry{}
	}
	now := time.Now()
	if len(t.stats) >= tombMax {
		for k, e := range t.stats {
			if now.Sub(e.at) > tombAge || len(t.stats) >= tombMax {
				delete(t.stats, k)
			}
		}
	}
	t.stats[serial] = tombEntry{path: path, stat: st, at: now, pe: pe}
}

// element returns the removed process with the given anchor and serial
// while its output is still readable.
func (t *tomb) element(path string, serial uint64) (*procElement, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.stats[serial]
	return e.pe, ok && e.path == path && e.pe != nil
}

// forget drops the tomb's hold on a removed process's output.
func (t *tomb) forget(serial uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.stats[serial]; ok {
		e.pe = nil
		t.stats[serial] = e
	}
}

func (t *tomb) get(path string, serial uint64) (proc.Stat, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.stats[serial]
	if !ok || e.path != path || time.Since(e.at) > tombAge {
		return proc.Stat{}, false
	}
	return e.stat, true
}

// cmdToAPI is the one conversion of a process's Cmd to the wire's;
// cmdFromAPI is its inverse. TestCmdRoundTrip checks that both carry
// every field.
func cmdToAPI(c proc.Cmd) *api.Cmd {
	return &api.Cmd{
		Path: c.Path, Args: c.Args, Env: c.Env, Dir: c.Dir, Scrub: c.Scrub,
		Dirs: c.Dirs, Result: c.Result, NoStdin: c.NoStdin,
		Tty: c.Tty, Rows: uint32(c.Rows), Cols: uint32(c.Cols), Cred: c.Cred,
		Stdin: c.Stdin, Ready: c.Ready,
	}
}

func cmdFromAPI(c *api.Cmd) proc.Cmd {
	return proc.Cmd{
		Path: c.GetPath(), Args: c.GetArgs(), Env: c.GetEnv(), Dir: c.GetDir(), Scrub: c.GetScrub(),
		Dirs: c.GetDirs(), Result: c.GetResult(), NoStdin: c.GetNoStdin(),
		Tty: c.GetTty(), Rows: clampSize(c.GetRows()), Cols: clampSize(c.GetCols()), Cred: c.GetCred(),
		Stdin: c.GetStdin(), Ready: c.GetReady(),
	}
}

// procStat is a process's state for a client: its command without the
// bytes given as its stdin (a worker's request), and, for a binary from
// the store, the binary's digest and build.
func (s *Server) procStat(st proc.Stat, serial uint64) *api.ProcStat {
	st.Cmd.Stdin = nil
	out := &api.ProcStat{
		Cmd:   cmdToAPI(st.Cmd),
		Phase: st.Phase, Pid: int64(st.PID), StartedUnixNano: st.Started.UnixNano(),
		ExitCode: int32(st.ExitCode), Signal: st.Signal, Exit: st.Exit, Serial: serial, Result: st.Result,
	}
	if !st.Exited.IsZero() {
		out.ExitedUnixNano = st.Exited.UnixNano()
	}
	if !st.Ready.IsZero() {
		out.ReadyUnixNano = st.Ready.UnixNano()
	}
	if sum := storedDigest(st.Cmd.Path); sum != "" {
		out.BinarySha256, out.Build = sum, s.builds.of(sum, st.Cmd.Path)
	}
	return out
}

type procService struct {
	api.UnimplementedProcServer
	s *Server
}

// element finds the element at a local path.
func (s *Server) element(raw string) (anchor.Path, anchor.Element, error) {
	p, err := s.localPath(raw)
	if err != nil {
		return p, nil, err
	}
	if len(p.Elems) == 0 {
		return p, serverElement{}, nil
	}
	e, ok := s.tree.Get(p.Elems)
	if !ok {
		return p, nil, fault.Errorf(fault.NotFound, "no element at %s", p)
	}
	return p, e, nil
}

// serverElement stands for the server's own anchor.
type serverElement struct{}

func (serverElement) Kind() kind.Kind { return kind.Server }

func (s *Server) procAt(raw string) (*procElement, error) {
	p, e, err := s.element(raw)
	if err != nil {
		return nil, err
	}
	pe, ok := e.(*procElement)
	if !ok {
		return nil, fault.Errorf(fault.BadRequest, "%s holds a %s, not a proc", p, e.Kind())
	}
	return pe, nil
}

func (v *procService) Make(ctx context.Context, req *api.MakeProcRequest) (*api.ProcStat, error) {
	pe, err := v.s.makeProc(req.GetPath(), cmdFromAPI(req.GetCmd()), callerOf(ctx), opOf(ctx), spawned{})
	if err != nil {
		return nil, err
	}
	return v.s.procStat(pe.Peek(), pe.serial), nil
}

// makeProc starts a process for who and attaches it at the local path raw;
// its exit is recorded under op's number. Its errors are gRPC statuses.
func (s *Server) makeProc(raw string, c proc.Cmd, who caller, op *oplog.Op, sp spawned) (*procElement, error) {
	spec := c
	p, err := s.localPath(raw)
	if err != nil {
		return nil, err
	}
	if len(p.Elems) == 0 || p.Recursive {
		return nil, fault.Errorf(fault.BadRequest, "mkproc needs an anchor below a server, like %s/job, not %s", "/"+s.id.String(), p)
	}
	if c.Path == "" {
		return nil, fault.New(fault.BadRequest, "the command has no Path")
	}
	if len(c.Stdin) > proc.MaxStdin {
		return nil, fault.Errorf(fault.BadRequest, "the command's stdin has %d bytes, more than %d", len(c.Stdin), proc.MaxStdin)
	}
	dirs, worker, err := procDirs(p, c.Dirs)
	if err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	release, err := s.tree.Reserve(p.Elems, kind.Proc)
	if err != nil {
		if anchor.IsOccupied(err) {
			return nil, fault.New(fault.Exists, err.Error())
		}
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	if worker != "" {
		if err := s.dirs.Add(worker, p.String(), dirs); err != nil {
			release(nil)
			return nil, fault.New(fault.Exists, err.Error())
		}
	}
	var cred *procCred
	unlist := func() {
		if worker != "" {
			s.dirs.Remove(worker)
		}
		if cred != nil {
			s.forgetCred(cred)
		}
	}
	if c.Cred && s.ring != nil {
		var env string
		if cred, env, err = s.newProcCred(p.String(), p.Elems[len(p.Elems)-1], who); err != nil {
			unlist()
			release(nil)
			return nil, fault.New(fault.Remote, err.Error())
		}
		c.Env = append(slices.Clip(c.Env), env)
	}
	// A worker of a circuit program (its anchor named by a worker ID, as
	// Spawn's are) serves its profiles on a control socket it makes at
	// this path, in the server's private directory.
	var control string
	if anchorfs.IsWorkerID(p.Elems[len(p.Elems)-1]) {
		dir, err := s.credDir()
		if err != nil {
			unlist()
			release(nil)
			return nil, fault.New(fault.Remote, err.Error())
		}
		control = filepath.Join(dir, rand.Text()[:12]+".ctl")
		c.Env = append(slices.Clip(c.Env), envControl+"="+control)
	}
	grave := s.graveDraft(p.String(), p.Elems[len(p.Elems)-1], c, who)
	if grave != nil {
		if sp.parent != "" {
			grave.Parent = sp.parent
		}
		grave.Replaces = sp.replaces
		// A worker says when it runs its function (Respawn waits for it).
		if !c.Tty {
			c.Ready = true
			c.Env = append(slices.Clip(c.Env), fmt.Sprintf("%s=%d", envReady, c.ReadyFD()))
		}
	}
	pr, err := proc.Start(c)
	if err != nil {
		unlist()
		release(nil)
		return nil, fault.Errorf(fault.Remote, "starting %s: %v", c.Path, err)
	}
	if grave != nil {
		pr.KeepTail("stderr", graveyard.StderrTail)
	}
	pe := &procElement{Proc: pr, serial: s.serial.Add(1), path: p.String(), worker: worker, unlisted: make(chan struct{}), op: op, control: control, grave: grave, spec: spec}
	if err := release(pe); err != nil {
		pr.Scrub()
		unlist()
		return nil, fault.New(fault.Remote, err.Error())
	}
	if !s.goFunc(func() { s.reap(p.Elems, pe) }) || cred != nil && !s.goFunc(func() { s.renewProcCred(cred, pe.Done()) }) {
		// The server is stopping and takes no reaper: the process goes
		// now, as its reaper would have taken it.
		pr.Scrub()
		s.tree.Remove(p.Elems, pe)
		unlist()
		close(pe.unlisted)
		return nil, fault.New(fault.Precondition, "the server is stopping")
	}
	return pe, nil
}

// procDirs checks the anchor-file-system directories of a process to be
// made at p, and returns them with the worker ID they list it under: the
// anchor's name, which must be one.
func procDirs(p anchor.Path, raw []string) ([][]string, string, error) {
	if len(raw) == 0 {
		return nil, "", nil
	}
	worker := p.Elems[len(p.Elems)-1]
	if !anchorfs.IsWorkerID(worker) {
		return nil, "", fmt.Errorf("a process listed in directories must be at an anchor named by a worker ID (R and 16 hex digits), not %q", worker)
	}
	if len(raw) > anchorfs.MaxDirs {
		return nil, "", fmt.Errorf("%d directories, limit %d", len(raw), anchorfs.MaxDirs)
	}
	dirs := make([][]string, 0, len(raw))
	for _, d := range raw {
		elems, err := anchorfs.ParseDir(d)
		if err != nil {
			return nil, "", err
		}
		dirs = append(dirs, elems)
	}
	return dirs, worker, nil
}

// reap waits for a process to exit and, with Cmd.Scrub, removes it, keeping
// its status in the tomb. On server stop it stops the process.
func (s *Server) reap(elems []string, pe *procElement) {
	select {
	case <-pe.Done():
	case <-s.ctx.Done():
		pe.Stop(2 * time.Second)
	}
	if pe.worker != "" {
		s.dirs.Remove(pe.worker) // before anyone can see the exit
	}
	close(pe.unlisted)
	if pe.control != "" {
		os.Remove(pe.control)
	}
	st := pe.Peek()
	if pe.op != nil {
		pe.op.Exited(exitWhat(st.ExitCode, st.Signal, st.Exit))
	}
	s.bury(pe, st)
	if !st.Cmd.Scrub {
		s.tomb.put(pe.path, pe.serial, st, nil) // if scrubbed later, a Wait by serial still answers
		return
	}
	// Cmd.Scrub: the element goes once the process has exited and its
	// output has been read. Output nobody reads keeps it (and, by serial,
	// its creator's access) for at most outputGrace.
	s.tomb.put(pe.path, pe.serial, st, pe)
	s.awaitOutput(pe.Streams)
	s.tree.Remove(elems, pe)
	s.tomb.forget(pe.serial)
	pe.Scrub() // discards what nobody read
	s.reburied(pe)
}

// awaitOutput waits, for an element made with Scrub that has ended, until
// its output has been read, for at most outputGrace, or until the server
// stops. It returns at once when no output is left unread.
//
// Pending is asked again each time an output ends: an output still being
// read when the process exited (its reader busy) is then done, and an
// empty one nobody opened (often stderr) holds nothing back.
func (s *Server) awaitOutput(streams *stdio.Streams) {
	grace := time.NewTimer(outputGrace)
	defer grace.Stop()
	for streams.Pending() {
		select {
		case <-streams.Released():
		case <-grace.C:
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// outputGrace is how long the unread output of a process made with
// Cmd.Scrub keeps it after its exit.
const outputGrace = 30 * time.Second

func (v *procService) Peek(_ context.Context, req *api.PathRequest) (*api.ProcStat, error) {
	pe, err := v.s.procAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	return v.s.procStat(pe.Peek(), pe.serial), nil
}

func (v *procService) Wait(ctx context.Context, req *api.WaitRequest) (*api.ProcStat, error) {
	pe, err := v.s.procAt(req.GetPath())
	if err == nil && (req.GetSerial() == 0 || req.GetSerial() == pe.serial) {
		st, err := pe.Wait(ctx)
		if err != nil {
			return nil, status.FromContextError(err).Err()
		}
		return v.s.procStat(st, pe.serial), nil
	}
	if p, perr := v.s.localPath(req.GetPath()); req.GetSerial() != 0 && perr == nil {
		if st, ok := v.s.tomb.get(p.String(), req.GetSerial()); ok {
			return v.s.procStat(st, req.GetSerial()), nil
		}
	}
	if err == nil {
		err = fault.Errorf(fault.NotFound, "the process waited for is no longer at %s", req.GetPath())
	}
	return nil, err
}

func (v *procService) Signal(_ context.Context, req *api.SignalRequest) (*api.SignalReply, error) {
	pe, err := v.s.procAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	if err := pe.Signal(req.GetSignal()); err != nil {
		if errors.Is(err, proc.ErrBadSignal) {
			return nil, fault.New(fault.BadRequest, err.Error())
		}
		return nil, fault.New(fault.Precondition, err.Error())
	}
	return &api.SignalReply{}, nil
}

func (v *procService) Resize(_ context.Context, req *api.ResizeRequest) (*api.SignalReply, error) {
	pe, err := v.s.procAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	if err := pe.Resize(clampSize(req.GetRows()), clampSize(req.GetCols())); err != nil {
		return nil, fault.New(fault.Precondition, err.Error())
	}
	return &api.SignalReply{}, nil
}

// clampSize keeps a terminal dimension in what the kernel takes.
func clampSize(n uint32) uint16 { return uint16(min(n, 0xffff)) }

type anchorService struct {
	api.UnimplementedAnchorServer
	s *Server
}

func (v *anchorService) Get(_ context.Context, req *api.PathRequest) (*api.GetReply, error) {
	p, err := v.s.localPath(req.GetPath())
	if err != nil {
		return nil, err
	}
	if len(p.Elems) == 0 {
		return &api.GetReply{Kind: string(kind.Server)}, nil
	}
	e, ok := v.s.tree.Get(p.Elems)
	if !ok {
		return &api.GetReply{}, nil
	}
	return &api.GetReply{Kind: string(e.Kind())}, nil
}

// scrubber is an element that can be aborted.
type scrubber interface{ Scrub() }

func (v *anchorService) Scrub(_ context.Context, req *api.PathRequest) (*api.ScrubReply, error) {
	p, e, err := v.s.element(req.GetPath())
	if err != nil {
		return nil, err
	}
	if _, ok := e.(serverElement); ok {
		return nil, fault.Errorf(fault.BadRequest, "%s is a server; stop it with circuit suicide", p)
	}
	if v.s.tree.Remove(p.Elems, e) {
		if sc, ok := e.(scrubber); ok {
			sc.Scrub()
		}
	}
	return &api.ScrubReply{}, nil
}

func peekProc(_ context.Context, s *Server, e anchor.Element) (*api.PeekReply, error) {
	pe, ok := e.(*procElement)
	if !ok {
		return nil, wrongElement(e)
	}
	return &api.PeekReply{Kind: string(kind.Proc), State: &api.PeekReply_Proc{Proc: s.procStat(pe.Peek(), pe.serial)}}, nil
}
