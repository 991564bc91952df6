// Package testcluster starts real circuit servers for tests: as processes of
// the circuit binary (Start; package build makes the binary), or inside the
// test process (StartInProcess). All servers listen on loopback with free
// ports and are stopped, by their own PIDs, when the test ends.
package testcluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/cluster"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/server"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testnet"
)

// Options configure a cluster of processes.
type Options struct {
	Key   bool     // make a key file and give it to every server and CLI call
	Netns string   // run every server and CLI call inside this network namespace
	Args  []string // extra arguments for every server
	Local bool     // fast failure-detection timers (-timing local)
	// Plain runs servers (and CLI calls) of the binary built without the
	// race detector (build.Static), for tests that measure timing.
	Plain bool
}

// Cluster is a set of server processes.
type Cluster struct {
	t       testing.TB
	Bin     string
	KeyFile string // "" without a key
	opts    Options
	mu      sync.Mutex
	Servers []*Proc
}

// Proc is one server process.
type Proc struct {
	URL    string
	ID     string // X...
	Addr   string
	Cmd    *exec.Cmd
	stderr *SyncBuffer
	exited chan struct{}
	err    error
}

// Start starts n server processes; each after the first joins the first.
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Bin: build.Circuit(t, build.Race), opts: opts}
	if opts.Plain {
		c.Bin = build.Circuit(t, build.Static)
	}
	if opts.Key {
		c.KeyFile = filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(c.KeyFile, []byte(security.Generate()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		var args []string
		if i > 0 {
			args = []string{"-j", c.Servers[0].URL}
		}
		c.StartServer(args...)
	}
	c.WaitMembers(n)
	return c
}

// StartServer starts one more server on a free loopback port with extra
// arguments, and waits for its URL.
func (c *Cluster) StartServer(extra ...string) *Proc {
	c.t.Helper()
	args := []string{"start", "-a", "127.0.0.1:0"}
	if c.KeyFile != "" {
		args = append(args, "-hmac", c.KeyFile)
	}
	if c.opts.Local {
		args = append(args, "-timing", "local")
	}
	args = append(append(args, c.opts.Args...), extra...)
	p := c.Spawn(args...)
	c.mu.Lock()
	c.Servers = append(c.Servers, p)
	c.mu.Unlock()
	return p
}

// Spawn runs `circuit ARGS` expecting a server: it waits for the URL line on
// stdout and registers the process to be killed at the end of the test.
func (c *Cluster) Spawn(args ...string) *Proc {
	c.t.Helper()
	return c.SpawnEnv(nil, args...)
}

// SpawnEnv is Spawn with extra environment variables.
func (c *Cluster) SpawnEnv(env []string, args ...string) *Proc {
	c.t.Helper()
	return c.SpawnFiles(env, nil, args...)
}

// SpawnFiles is SpawnEnv with files the process inherits as descriptors
// 3 and up, without close-on-exec, as from a careless parent.
func (c *Cluster) SpawnFiles(env []string, files []*os.File, args ...string) *Proc {
	c.t.Helper()
	cmd := c.command(context.Background(), args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.ExtraFiles = files
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, stderr: &SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		if p.Running() {
			cmd.Process.Kill()
		}
		<-p.exited
		if c.t.Failed() {
			c.t.Logf("stderr of %s (pid %d):\n%s", p.ID, cmd.Process.Pid, p.Stderr())
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			<-p.exited
			c.t.Fatalf("circuit %s exited without a URL: %v\n%s", strings.Join(args, " "), p.err, p.Stderr())
		}
		u, err := ident.ParseURL(line)
		if err != nil {
			c.t.Fatalf("circuit start printed %q: %v", line, err)
		}
		p.URL, p.ID, p.Addr = line, u.ID.String(), u.Addr
	case <-time.After(30 * time.Second):
		c.t.Fatalf("circuit %s printed no URL within 30s\n%s", strings.Join(args, " "), p.Stderr())
	}
	return p
}

// command runs the binary, inside the cluster's namespace if it has one.
func (c *Cluster) command(ctx context.Context, args ...string) *exec.Cmd {
	return c.commandOf(ctx, c.Bin, args...)
}

// commandOf runs bin, inside the cluster's namespace if it has one.
func (c *Cluster) commandOf(ctx context.Context, bin string, args ...string) *exec.Cmd {
	if c.opts.Netns != "" {
		return testnet.Command(ctx, c.opts.Netns, bin, args...)
	}
	return exec.CommandContext(ctx, bin, args...)
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Stderr is what the process has logged so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits up to timeout for the process to exit and returns its error.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("server %s (pid %d) still running after %v", p.ID, p.Cmd.Process.Pid, timeout)
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() {
	p.Cmd.Process.Kill()
	<-p.exited
}

// Client connects the client library to server p, with the cluster's key,
// and closes it when the test ends.
func (c *Cluster) Client(p *Proc) *client.Client {
	c.t.Helper()
	var key []byte
	if c.KeyFile != "" {
		var err error
		if key, err = os.ReadFile(c.KeyFile); err != nil {
			c.t.Fatal(err)
		}
	}
	cl, err := client.Connect(context.Background(), client.Options{Addr: p.URL, Key: key})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// Result is the outcome of one CLI run.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs the CLI with the given arguments, dialled into server 0 (with -d
// and the key), and returns its output and exit code.
func (c *Cluster) Run(args ...string) Result {
	c.t.Helper()
	return c.RunVia(c.Servers[0], "", args...)
}

// RunVia runs the CLI dialled into p, with stdin.
func (c *Cluster) RunVia(p *Proc, stdin string, args ...string) Result {
	c.t.Helper()
	full := append([]string{args[0], "-d", p.URL}, args[1:]...)
	return c.RunEnv(nil, stdin, full...)
}

// RunEnv runs the CLI with exactly the given arguments, extra environment,
// and the cluster's key in $CIRCUIT_HMAC.
func (c *Cluster) RunEnv(env []string, stdin string, args ...string) Result {
	c.t.Helper()
	return c.runBinary(c.Bin, env, stdin, args...)
}

// RunProgram runs another program of the test (see Build) with the
// cluster's key in $CIRCUIT_HMAC, and returns its output and exit code.
func (c *Cluster) RunProgram(bin string, args ...string) Result {
	c.t.Helper()
	return c.runBinary(bin, nil, "", args...)
}

func (c *Cluster) runBinary(bin string, env []string, stdin string, args ...string) Result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := c.commandOf(ctx, bin, args...)
	cmd.Env = os.Environ()
	if c.KeyFile != "" {
		cmd.Env = append(cmd.Env, "CIRCUIT_HMAC="+c.KeyFile)
	}
	cmd.Env = append(cmd.Env, env...) // last wins

	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("running %s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// Lines splits output into its non-empty lines.
func Lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// WaitMembers waits until `ls /` at every running server lists exactly n
// servers.
func (c *Cluster) WaitMembers(n int) {
	c.t.Helper()
	testsupport.Eventually(c.t, 20*time.Second, func() error {
		c.mu.Lock()
		servers := append([]*Proc(nil), c.Servers...)
		c.mu.Unlock()
		for _, p := range servers {
			if !p.Running() {
				continue
			}
			r := c.RunVia(p, "", "ls", "/")
			if r.Code != 0 {
				return fmt.Errorf("ls / at %s: exit %d: %s", p.ID, r.Code, strings.TrimSpace(r.Stderr))
			}
			if got := Lines(r.Stdout); len(got) != n {
				return fmt.Errorf("%s lists %d members %v, want %d", p.ID, len(got), got, n)
			}
		}
		return nil
	})
}

// SyncBuffer is a bytes.Buffer that several goroutines may write and read.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartInProcess starts n servers inside the test process with fast timers,
// each after the first joining the first, and waits until all see all.
func StartInProcess(t testing.TB, n int, key *security.Key) []*server.Server {
	t.Helper()
	var out []*server.Server
	for i := 0; i < n; i++ {
		cfg := server.Config{Addr: "127.0.0.1:0", Key: key, Timing: cluster.Local, Logger: testLogger(t)}
		if i > 0 {
			cfg.Join = []string{out[0].URL().String()}
		}
		s, err := server.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		out = append(out, s)
	}
	testsupport.Eventually(t, 20*time.Second, func() error {
		for _, s := range out {
			if got := len(s.Members()); got != n {
				return fmt.Errorf("in-process server %s sees %d members, want %d", s.ID(), got, n)
			}
		}
		return nil
	})
	return out
}

// testLogger routes server logs to t.Log, at warning level and above unless
// CIRCUIT_TEST_LOG=debug. Lines logged after the test ends (memberlist's
// goroutines outlive its Shutdown briefly) are dropped.
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("CIRCUIT_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	w := &tWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
