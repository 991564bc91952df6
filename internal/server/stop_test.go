package server

// Tests of the server's own logic, on real servers in this process on
// loopback: its paths, and how it refuses work once Stop has begun.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dockercontainer "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/cluster"
	"github.com/circuit-project/circuit/internal/element/docker"
	"github.com/circuit-project/circuit/internal/element/proc"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testimage"
	"github.com/circuit-project/circuit/internal/wire"
)

// startServer starts a server alone on loopback, stopped when the test ends.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr, cfg.Timing = "127.0.0.1:0", cluster.Local
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// stopping puts s where Stop puts it before it waits for its goroutines:
// refusing new work, with its listener and RPC server still open, as they
// are for an RPC or a connection that arrives during Stop.
func stopping(s *Server) { s.refuseWork() }

func TestLocalPath(t *testing.T) {
	s := startServer(t, Config{})
	self := "/" + s.ID().String()
	other := ident.ID(uint64(s.ID()) + 1).String()
	for _, tc := range []struct {
		raw       string
		ok        bool
		elems     []string
		recursive bool
	}{
		{self, true, nil, false},
		{self + "/a/b", true, []string{"a", "b"}, false},
		{self + "/a/...", true, []string{"a"}, true},
		{"/" + other + "/a", false, nil, false},
		{"", false, nil, false},
		{"a/b", false, nil, false},
		{"/notanid/a", false, nil, false},
	} {
		p, err := s.localPath(tc.raw)
		if !tc.ok {
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("localPath(%q) = %v, want an InvalidArgument error", tc.raw, err)
			}
			continue
		}
		if err != nil || p.Server != s.ID() || strings.Join(p.Elems, "/") != strings.Join(tc.elems, "/") || p.Recursive != tc.recursive {
			t.Errorf("localPath(%q) = %+v, %v; want elems %q, recursive %v", tc.raw, p, err, tc.elems, tc.recursive)
		}
	}
}

// TestMakeProcPaths checks that a process needs an anchor of its own below
// the server, and that a refused one leaves nothing in the tree.
func TestMakeProcPaths(t *testing.T) {
	s := startServer(t, Config{})
	self := "/" + s.ID().String()
	cmd := proc.Cmd{Path: "/bin/true"}
	for _, raw := range []string{self, self + "/...", self + "/a/...", "/" + ident.ID(uint64(s.ID())+1).String() + "/a"} {
		if _, err := s.makeProc(raw, cmd, caller{}, nil, spawned{}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("makeProc(%q) = %v, want InvalidArgument", raw, err)
		}
	}
	if _, err := s.makeProc(self+"/job", proc.Cmd{}, caller{}, nil, spawned{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("makeProc without a Path = %v, want InvalidArgument", err)
	}
	if n := s.tree.Count(); n != 0 {
		t.Errorf("after refused mkprocs the tree holds %d elements: %v", n, s.tree.Elements())
	}
	pe, err := s.makeProc(self+"/job", proc.Cmd{Path: "/bin/sleep", Args: []string{"60"}, NoStdin: true}, caller{}, nil, spawned{})
	if err != nil {
		t.Fatal(err)
	}
	defer pe.Scrub()
	if _, err := s.makeProc(self+"/job", cmd, caller{}, nil, spawned{}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("a second mkproc at a taken anchor = %v, want AlreadyExists", err)
	}
	if got := s.tree.Elements(); len(got) != 1 || got[0].Path != self+"/job" || got[0].Kind != "proc" {
		t.Errorf("the tree holds %v, want the one process at %s/job", got, self)
	}
}

// TestGoFuncRefusesOnceStopping: before Stop, goFunc runs its function and
// Stop waits for it; once Stop has begun, it refuses and never runs it.
func TestGoFuncRefusesOnceStopping(t *testing.T) {
	s := startServer(t, Config{})
	release := make(chan struct{})
	var ranLate, finished atomic.Bool
	if !s.goFunc(func() { <-release; finished.Store(true) }) {
		t.Fatal("goFunc refused on a running server")
	}
	stopping(s)
	if s.goFunc(func() { ranLate.Store(true) }) {
		t.Error("goFunc accepted work once Stop had begun")
	}
	stopped := make(chan struct{})
	go func() { s.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a goroutine of goFunc was still running")
	case <-time.After(100 * time.Millisecond): // no news is what is tested: Stop still waits
	}
	close(release)
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not return after the last goroutine ended")
	}
	if !finished.Load() || ranLate.Load() {
		t.Errorf("the first function finished: %v (want true); the refused one ran: %v (want false)", finished.Load(), ranLate.Load())
	}
}

// TestMakeProcDuringStop: a mkproc that arrives once Stop has begun is
// refused as a failed precondition, and what it started goes: the process is killed,
// the anchor is free, and its worker file is unlisted.
func TestMakeProcDuringStop(t *testing.T) {
	s := startServer(t, Config{})
	self := "/" + s.ID().String()
	// An argument no other process has, to find this one by.
	mark := fmt.Sprintf("%d.%d", os.Getpid(), time.Now().UnixNano()%1e6)
	worker := fmt.Sprintf("R%016x", uint64(s.ID())^0xffff) // a worker ID, as Spawn names anchors
	stopping(s)
	_, err := s.makeProc(self+"/"+worker, proc.Cmd{Path: "/bin/sleep", Args: []string{mark}, NoStdin: true, Dirs: []string{"/stoptest"}}, caller{}, nil, spawned{})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "stopping") {
		t.Fatalf("mkproc during Stop = %v, want FailedPrecondition: the server is stopping", err)
	}
	if n := s.tree.Count(); n != 0 {
		t.Errorf("the refused process is in the tree: %v", s.tree.Elements())
	}
	if n := s.dirs.Len(); n != 0 {
		t.Errorf("the refused process is still listed in the anchor file system: %d files", n)
	}
	testsupport.Eventually(t, 10*time.Second, func() error {
		if pid := processWithArg("sleep", mark); pid != 0 {
			return fmt.Errorf("the refused process %d (sleep %s) still runs", pid, mark)
		}
		return nil
	})
}

// processWithArg returns the PID of a live process running name with its
// one argument arg, or 0.
func processWithArg(name, arg string) int {
	want := []byte(name + "\x00" + arg + "\x00")
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasSuffix(b, want) { // a zombie's is empty
			continue
		}
		var pid int
		fmt.Sscan(filepath.Base(filepath.Dir(p)), &pid)
		return pid
	}
	return 0
}

// TestMakeDockerDuringStop: a mkdkr that arrives once Stop has begun is
// refused as a failed precondition, and its container, already started, is removed.
func TestMakeDockerDuringStop(t *testing.T) {
	cli := testimage.Engine(t)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ref, err := testimage.Ensure(ctx, cli, "circuit-server-test")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{Docker: true})
	path := "/" + s.ID().String() + "/box"
	stopping(s)
	_, err = (&dockerService{s: s}).Make(ctx, &api.MakeDockerRequest{Path: path, Config: &api.DockerConfig{Image: ref, Path: "/bin/sleep", Args: []string{"60"}}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "stopping") {
		t.Fatalf("mkdkr during Stop = %v, want FailedPrecondition: the server is stopping", err)
	}
	if n := s.tree.Count(); n != 0 {
		t.Errorf("the refused container is in the tree: %v", s.tree.Elements())
	}
	// Scrub removes the container before Make returns.
	left, err := cli.ContainerList(ctx, dockercontainer.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.Label+"="+path))})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		for _, c := range left {
			cli.ContainerRemove(ctx, c.ID, dockercontainer.RemoveOptions{Force: true})
		}
		t.Fatalf("the refused container is still there: %d with label %s=%s", len(left), docker.Label, path)
	}
}

// TestConnectionAcceptedDuringStop: a connection the listener accepts once
// Stop has begun is closed at once, unanswered, where a running server
// would wait up to the handshake timeout for its preamble.
func TestConnectionAcceptedDuringStop(t *testing.T) {
	s := startServer(t, Config{})
	stopping(s)
	conn, err := net.DialTimeout("tcp", s.URL().Addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.SetReadDeadline(start.Add(wire.HandshakeTimeout - time.Second))
	n, err := conn.Read(make([]byte, 1))
	if n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)) {
		t.Fatalf("reading a connection accepted during Stop: %d bytes, %v after %v; want it closed unanswered", n, err, time.Since(start))
	}
	s.mu.Lock()
	tracked := len(s.conns)
	s.mu.Unlock()
	if tracked != 0 {
		t.Errorf("%d connections tracked after Stop began", tracked)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}
