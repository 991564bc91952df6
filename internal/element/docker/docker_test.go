package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/circuit-project/circuit/internal/element/proc"
	"github.com/circuit-project/circuit/internal/kind"
	"github.com/circuit-project/circuit/internal/testsupport/testimage"
)

// The tests run against the Docker engine of this host, on a tiny image they
// make from a static busybox (package busybox-static). Without an engine
// they skip, unless CIRCUIT_REQUIRE_DOCKER=1.

const testTimeout = 60 * time.Second

// testImage is the reference of the busybox image, once engine has made it.
var testImage string

// testRoot prefixes the anchor of every container the tests make, so that
// TestMain can remove what a failing test left behind.
var testRoot = fmt.Sprintf("/Xdockertest%d", os.Getpid())

var (
	engineOnce sync.Once
	testEngine *Engine
	engineErr  error
	imageOnce  sync.Once
	imageErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testEngine != nil {
		if err := removeLeftovers(testEngine); err != nil {
			fmt.Fprintln(os.Stderr, "removing test containers:", err)
		}
		testEngine.Close()
	}
	os.Exit(code)
}

// removeLeftovers removes the containers of this test run still there.
func removeLeftovers(e *Engine) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	list, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", Label))})
	if err != nil {
		return err
	}
	for _, c := range list {
		if strings.HasPrefix(c.Labels[Label], testRoot+"/") {
			if err := e.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// engine returns the shared engine, with the test image present.
func engine(t *testing.T) *Engine {
	t.Helper()
	engineOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		testEngine, engineErr = NewEngine(ctx)
	})
	if engineErr != nil {
		if os.Getenv("CIRCUIT_REQUIRE_DOCKER") == "1" {
			t.Fatalf("CIRCUIT_REQUIRE_DOCKER=1, but: %v", engineErr)
		}
		t.Skipf("no docker engine (set CIRCUIT_REQUIRE_DOCKER=1 to fail instead): %v", engineErr)
	}
	imageOnce.Do(func() { imageErr = buildImage(testEngine) })
	if imageErr != nil {
		t.Fatalf("making test image %s: %v", testImage, imageErr)
	}
	return testEngine
}

// buildImage makes the busybox test image and sets testImage to it.
func buildImage(e *Engine) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ref, err := testimage.Ensure(ctx, e.cli, "circuit-test-busybox")
	testImage = ref
	return err
}

// start starts a container of the test image (unless cfg names another),
// scrubbed when the test ends.
func start(t *testing.T, cfg Config) *Container {
	t.Helper()
	c, _ := startWarn(t, cfg)
	return c
}

func startWarn(t *testing.T, cfg Config) (*Container, []string) {
	t.Helper()
	e := engine(t)
	if cfg.Image == "" {
		cfg.Image = testImage
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, warnings, err := e.Start(ctx, anchor(t), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Scrub)
	return c, warnings
}

func anchor(t *testing.T) string { return testRoot + "/" + t.Name() }

// readStream claims an output stream and reads it whole in the background.
func readStream(t *testing.T, c *Container, name string) <-chan string {
	t.Helper()
	if err := c.ClaimOutput(name); err != nil {
		t.Fatalf("ClaimOutput(%s): %v", name, err)
	}
	ch := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		c.CopyOutput(name, &b)
		ch <- b.String()
	}()
	return ch
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func wait(t *testing.T, c *Container) Stat {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := c.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st
}

func TestEcho(t *testing.T) {
	t.Parallel()
	c := start(t, Config{Path: "/bin/sh", Args: []string{"-c", "echo hello out; echo hello err >&2"}})
	out, errs := readStream(t, c, "stdout"), readStream(t, c, "stderr")
	if got := recv(t, out, "stdout"); got != "hello out\n" {
		t.Errorf("stdout = %q, want %q", got, "hello out\n")
	}
	if got := recv(t, errs, "stderr"); got != "hello err\n" {
		t.Errorf("stderr = %q, want %q", got, "hello err\n")
	}
	st := wait(t, c)
	if st.Phase != Exited || st.ExitCode != 0 || st.Exit != "" {
		t.Errorf("stat = %+v, want a successful exit", st)
	}
	if st.ID != c.ID() || st.Name != c.Name() || st.Image != testImage {
		t.Errorf("stat = %+v, want ID %s, name %s, image %s", st, c.ID(), c.Name(), testImage)
	}
	if st.Started.IsZero() || st.Exited.Before(st.Started) {
		t.Errorf("stat times: started %v, exited %v", st.Started, st.Exited)
	}
	for deadline := time.After(testTimeout); c.Pending(); {
		select {
		case <-c.Released():
		case <-deadline:
			t.Fatal("output still pending after both outputs were read to the end")
		}
	}
	if err := c.ClaimOutput("stdout"); !errors.Is(err, proc.ErrClosed) {
		t.Errorf("ClaimOutput after the end = %v, want %v", err, proc.ErrClosed)
	}
	if c.Kind() != kind.Docker {
		t.Errorf("Kind = %q", c.Kind())
	}
}

func TestEchoCommand(t *testing.T) {
	t.Parallel()
	c := start(t, Config{Path: "echo", Args: []string{"hello", "world"}}) // found in PATH
	if got := recv(t, readStream(t, c, "stdout"), "stdout"); got != "hello world\n" {
		t.Errorf("stdout = %q", got)
	}
	if st := wait(t, c); st.ExitCode != 0 {
		t.Errorf("exit = %d %q", st.ExitCode, st.Exit)
	}
}

// TestLargeOutput streams more than the pipes and the engine buffer.
func TestLargeOutput(t *testing.T) {
	t.Parallel()
	const n = 8 << 20
	c := start(t, Config{Path: "/bin/sh", Args: []string{"-c", fmt.Sprintf("yes 0123456789abcdef | head -c %d", n)}})
	got := recv(t, readStream(t, c, "stdout"), "stdout")
	if len(got) != n || !strings.HasPrefix(got, "0123456789abcdef\n0123") {
		t.Errorf("read %d bytes starting %.20q, want %d", len(got), got, n)
	}
	if st := wait(t, c); st.ExitCode != 0 {
		t.Errorf("exit = %d %q", st.ExitCode, st.Exit)
	}
}

func TestStdin(t *testing.T) {
	t.Parallel()
	c := start(t, Config{Path: "/bin/tr", Args: []string{"a-z", "A-Z"}})
	if err := c.ClaimStdin(); err != nil {
		t.Fatal(err)
	}
	if err := c.ClaimStdin(); !errors.Is(err, proc.ErrBusy) {
		t.Errorf("second ClaimStdin = %v, want %v", err, proc.ErrBusy)
	}
	out := readStream(t, c, "stdout")
	copied := make(chan error, 1)
	go func() { copied <- c.CopyStdin(strings.NewReader("hello circuit\n")) }()
	if err := recv(t, copied, "CopyStdin"); err != nil {
		t.Errorf("CopyStdin: %v", err)
	}
	if got := recv(t, out, "stdout"); got != "HELLO CIRCUIT\n" {
		t.Errorf("stdout = %q", got)
	}
	if st := wait(t, c); st.ExitCode != 0 {
		t.Errorf("exit = %d %q", st.ExitCode, st.Exit)
	}
	if err := c.ClaimStdin(); !errors.Is(err, proc.ErrClosed) {
		t.Errorf("ClaimStdin after EOF = %v, want %v", err, proc.ErrClosed)
	}
}

// TestStdinLarge pushes data through cat both ways at once, more than any
// buffer on the way holds.
func TestStdinLarge(t *testing.T) {
	t.Parallel()
	data := make([]byte, 4<<20)
	rand.Read(data)
	c := start(t, Config{Path: "/bin/cat"})
	if err := c.ClaimStdin(); err != nil {
		t.Fatal(err)
	}
	out := readStream(t, c, "stdout")
	copied := make(chan error, 1)
	go func() { copied <- c.CopyStdin(bytes.NewReader(data)) }()
	if got := recv(t, out, "stdout"); got != string(data) {
		t.Errorf("read back %d bytes, not the %d written", len(got), len(data))
	}
	if err := recv(t, copied, "CopyStdin"); err != nil {
		t.Errorf("CopyStdin: %v", err)
	}
	if st := wait(t, c); st.ExitCode != 0 {
		t.Errorf("exit = %d %q", st.ExitCode, st.Exit)
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	c := start(t, Config{Path: "/bin/sh", Args: []string{"-c", "exit 3"}})
	st := wait(t, c)
	if st.Phase != Exited || st.ExitCode != 3 || st.Exit != "exit status 3" {
		t.Errorf("stat = %+v, want exit code 3", st)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Wait")
	}
}

func TestSignal(t *testing.T) {
	t.Parallel()
	c := start(t, Config{Path: "/bin/sleep", Args: []string{"1000"}})
	if err := c.Signal("BOGUS"); !errors.Is(err, proc.ErrBadSignal) {
		t.Errorf("Signal(BOGUS) = %v, want %v", err, proc.ErrBadSignal)
	}
	if st := c.Stat(); st.Phase != Running || st.ExitCode != -1 {
		t.Errorf("stat before the signal = %+v", st)
	}
	if err := c.Signal("term"); err != nil {
		t.Fatalf("Signal(term): %v", err)
	}
	st := wait(t, c)
	if st.ExitCode != 143 && st.ExitCode != 137 {
		t.Errorf("exit code = %d, want 143 (or 137)", st.ExitCode)
	}
	if st.Exit == "" {
		t.Error("Exit empty after a signal")
	}
	if err := c.Signal("TERM"); err == nil || !strings.Contains(err.Error(), "has exited") {
		t.Errorf("Signal after exit = %v", err)
	}
}

// inspectDoc is the part of the inspect document the tests look at.
type inspectDoc struct {
	ID    string `json:"Id"`
	State struct {
		Status  string
		Running bool
	}
	Config struct {
		Labels map[string]string
	}
	HostConfig struct {
		Memory    int64
		CpuShares int64
		Binds     []string
	}
}

func peek(t *testing.T, c *Container) (inspectDoc, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	raw, err := c.Peek(ctx)
	if err != nil {
		t.Fatalf("Peek: %v", err)
	}
	var doc inspectDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("Peek gave no JSON: %v\n%s", err, raw)
	}
	return doc, raw
}

func TestPeek(t *testing.T) {
	t.Parallel()
	c := start(t, Config{Path: "/bin/sleep", Args: []string{"1000"}})
	doc, raw := peek(t, c)
	if doc.ID != c.ID() || !bytes.Contains(raw, []byte(c.ID())) {
		t.Errorf("Peek Id = %q, want %q", doc.ID, c.ID())
	}
	if !doc.State.Running || doc.State.Status != "running" || !bytes.Contains(raw, []byte(`"State"`)) {
		t.Errorf("Peek State = %+v, want running", doc.State)
	}
	if doc.Config.Labels[Label] != anchor(t) {
		t.Errorf("label %s = %q, want %q", Label, doc.Config.Labels[Label], anchor(t))
	}
	if !bytes.Contains(raw, []byte("\n\t\"Id\"")) {
		t.Errorf("Peek not indented:\n%.200s", raw)
	}
}

func TestResources(t *testing.T) {
	t.Parallel()
	c := start(t, Config{Path: "/bin/true", Memory: 64 << 20, CpuShares: 512})
	if st := wait(t, c); st.ExitCode != 0 {
		t.Errorf("exit = %d %q", st.ExitCode, st.Exit)
	}
	doc, _ := peek(t, c) // an exited container is still there
	if doc.HostConfig.Memory != 64<<20 || doc.HostConfig.CpuShares != 512 {
		t.Errorf("HostConfig Memory %d, CpuShares %d; want %d, 512", doc.HostConfig.Memory, doc.HostConfig.CpuShares, 64<<20)
	}
	if doc.State.Status != "exited" {
		t.Errorf("State.Status = %q, want exited", doc.State.Status)
	}
}

func TestMissingImage(t *testing.T) {
	t.Parallel()
	e := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, _, err := e.Start(ctx, anchor(t), Config{Image: "circuit-test-no-such-image:latest", Path: "/bin/true"})
	if err == nil {
		c.Scrub()
		t.Fatal("Start with a missing image succeeded")
	}
	want := `image "circuit-test-no-such-image:latest" not found on this host, and no registry is reachable to pull it (load it with docker load or docker import)`
	if !errors.Is(err, ErrImageNotFound) || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want one wrapping ErrImageNotFound saying %s", err, want)
	}
}

func TestBadConfig(t *testing.T) {
	t.Parallel()
	e := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Path: "/bin/true"}, "no Image"},
		{Config{Image: testImage}, "no command"},
		{Config{Image: testImage, Path: "/bin/true", Volume: []string{"relative"}}, "volume"},
		{Config{Image: testImage, Path: "/bin/no-such-command"}, `command "/bin/no-such-command" not found`},
		{Config{Image: testImage, Path: "no-such-command"}, `command "no-such-command" not found`},
		{Config{Image: testImage, Path: "/bin/true", Memory: 1}, "creating container"},
	} {
		c, _, err := e.Start(ctx, anchor(t), tc.cfg)
		if err == nil {
			c.Scrub()
			t.Errorf("Start(%+v) succeeded", tc.cfg)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
	// A failed start leaves no container behind.
	list, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", Label+"="+anchor(t)))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("%d containers left by failed starts", len(list))
	}
}

func TestLxc(t *testing.T) {
	t.Parallel()
	c, warnings := startWarn(t, Config{Path: "/bin/echo", Args: []string{"ok"}, Lxc: []string{"lxc.cgroup.cpuset.cpus = 0,1"}})
	found := false
	for _, w := range warnings {
		found = found || strings.Contains(w, "Lxc") && strings.Contains(w, "ignored")
	}
	if !found {
		t.Errorf("warnings = %q, want one saying Lxc is ignored", warnings)
	}
	if got := recv(t, readStream(t, c, "stdout"), "stdout"); got != "ok\n" {
		t.Errorf("stdout = %q", got)
	}
	if st := wait(t, c); st.ExitCode != 0 {
		t.Errorf("exit = %d %q", st.ExitCode, st.Exit)
	}
}

func TestVolumes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "greeting"), []byte("hello from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `cat /data/greeting
echo scratch > /scratch/f && cat /scratch/f
if touch /data/new 2>/dev/null; then echo writable; else echo read-only; fi
pwd; echo "$GREETING"`
	c := start(t, Config{
		Path:   "/bin/sh",
		Args:   []string{"-c", script},
		Volume: []string{dir + ":/data:ro", "/scratch"},
		Dir:    "/tmp",
		Env:    []string{"GREETING=hi"},
	})
	want := "hello from the host\nscratch\nread-only\n/tmp\nhi\n"
	if got := recv(t, readStream(t, c, "stdout"), "stdout"); got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if st := wait(t, c); st.ExitCode != 0 {
		t.Errorf("exit = %d %q", st.ExitCode, st.Exit)
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
		t.Error("the read-only bind mount was written")
	}
}

func TestEntry(t *testing.T) {
	t.Parallel()
	c := start(t, Config{Entry: "/bin/echo", Args: []string{"from", "entry"}})
	if got := recv(t, readStream(t, c, "stdout"), "stdout"); got != "from entry\n" {
		t.Errorf("stdout = %q", got)
	}
	if st := wait(t, c); st.ExitCode != 0 {
		t.Errorf("exit = %d %q", st.ExitCode, st.Exit)
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	e := engine(t)
	c := start(t, Config{Path: "/bin/sleep", Args: []string{"1000"}})
	if err := c.ClaimStdin(); err != nil { // a writer that never writes
		t.Fatal(err)
	}
	scrubbed := make(chan struct{})
	go func() { c.Scrub(); close(scrubbed) }()
	recv(t, scrubbed, "Scrub")
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Scrub")
	}
	if st := c.Stat(); st.Phase != Exited {
		t.Errorf("stat after Scrub = %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := e.cli.ContainerInspect(ctx, c.ID()); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect after Scrub = %v, want not found", err)
	}
	if _, err := c.Peek(ctx); err == nil {
		t.Error("Peek after Scrub succeeded")
	}
	if err := c.ClaimOutput("stdout"); !errors.Is(err, proc.ErrClosed) {
		t.Errorf("ClaimOutput after Scrub = %v, want %v", err, proc.ErrClosed)
	}
	if err := c.CopyStdin(strings.NewReader("late\n")); err != nil {
		t.Errorf("CopyStdin after Scrub = %v, want nil (nobody reads)", err)
	}
}

func TestBusy(t *testing.T) {
	t.Parallel()
	c := start(t, Config{Path: "/bin/cat"})
	out := readStream(t, c, "stdout")
	if err := c.ClaimOutput("stdout"); !errors.Is(err, proc.ErrBusy) || !strings.Contains(err.Error(), "already in use by another client") {
		t.Errorf("second ClaimOutput = %v, want %v", err, proc.ErrBusy)
	}
	if err := c.ClaimOutput("stdin"); err == nil {
		t.Error("ClaimOutput(stdin) succeeded")
	}
	if err := c.ClaimStdin(); err != nil {
		t.Fatal(err)
	}
	if err := c.CopyStdin(strings.NewReader("x\n")); err != nil {
		t.Errorf("CopyStdin: %v", err)
	}
	if got := recv(t, out, "stdout"); got != "x\n" {
		t.Errorf("stdout = %q", got)
	}
	if err := c.ClaimOutput("stdout"); !errors.Is(err, proc.ErrClosed) || !strings.Contains(err.Error(), "already closed") {
		t.Errorf("ClaimOutput after the end = %v, want %v", err, proc.ErrClosed)
	}
}

// failWriter fails after its first write, as a reader that went away.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n++; w.n > 1 {
		return 0, errors.New("reader gone")
	}
	return len(p), nil
}

// TestReaderGone: when the reader fails, the rest is discarded and the
// container does not block on its output.
func TestReaderGone(t *testing.T) {
	t.Parallel()
	c := start(t, Config{Path: "/bin/sh", Args: []string{"-c", "yes 0123456789abcdef | head -c 8000000; echo done >&2"}})
	errs := readStream(t, c, "stderr")
	if err := c.ClaimOutput("stdout"); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() { c.CopyOutput("stdout", &failWriter{}); close(copied) }()
	recv(t, copied, "CopyOutput to end")
	if got := recv(t, errs, "stderr"); got != "done\n" {
		t.Errorf("stderr = %q", got)
	}
	if st := wait(t, c); st.ExitCode != 0 {
		t.Errorf("exit = %d %q", st.ExitCode, st.Exit)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	e := engine(t)
	c := start(t, Config{Path: "/bin/sleep", Args: []string{"1000"}})
	stopped := make(chan struct{})
	go func() { c.Stop(10 * time.Second); close(stopped) }()
	recv(t, stopped, "Stop")
	st := c.Stat()
	if st.Phase != Exited || st.ExitCode != 143 {
		t.Errorf("stat after Stop = %+v, want exit code 143 (SIGTERM)", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := e.cli.ContainerInspect(ctx, c.ID()); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect after Stop = %v, want not found", err)
	}
}

// stuckWriter is a reader that takes one write, then blocks until released,
// as a client that stopped reading.
type stuckWriter struct {
	first   chan struct{}
	release chan struct{}
	once    sync.Once
}

func newStuckWriter(t *testing.T) *stuckWriter {
	w := &stuckWriter{first: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(w.release) })
	return w
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.first) })
	<-w.release
	return 0, errors.New("reader gone")
}

// blockedOutput starts a container that writes more than the buffers on the
// way hold, with a reader of stdout that got stuck after the first bytes,
// and stdout unread.
func blockedOutput(t *testing.T, e *Engine) *Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, _, err := e.Start(ctx, anchor(t), Config{Image: testImage, Path: "/bin/sh", Args: []string{"-c", "yes 0123456789abcdef | head -c 50000000; sleep 1000"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Scrub)
	if err := c.ClaimOutput("stdout"); err != nil {
		t.Fatal(err)
	}
	w := newStuckWriter(t)
	go c.CopyOutput("stdout", w)
	recv(t, w.first, "first output")
	return c
}

// TestScrubBlocked: Scrub is prompt even when the container is blocked on
// output its reader does not take.
func TestScrubBlocked(t *testing.T) {
	t.Parallel()
	e := engine(t)
	c := blockedOutput(t, e)
	scrubbed := make(chan struct{})
	go func() { c.Scrub(); close(scrubbed) }()
	select {
	case <-scrubbed:
	case <-time.After(callTimeout / 2):
		t.Fatal("Scrub of a container blocked on output took too long")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := e.cli.ContainerInspect(ctx, c.ID()); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect after Scrub = %v, want not found", err)
	}
}

// TestStopBlocked: Stop is prompt even when the container is blocked on
// output nobody reads.
func TestStopBlocked(t *testing.T) {
	t.Parallel()
	e := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, _, err := e.Start(ctx, anchor(t), Config{Image: testImage, Path: "/bin/sh", Args: []string{"-c", "yes 0123456789abcdef | head -c 50000000; echo done >&2; sleep 1000"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Scrub)
	stopped := make(chan struct{})
	go func() { c.Stop(time.Second); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(callTimeout / 2):
		t.Fatal("Stop of a container blocked on output took too long")
	}
	if st := c.Stat(); st.Phase != Exited {
		t.Errorf("stat after Stop = %+v", st)
	}
}

func TestEngineClose(t *testing.T) {
	t.Parallel()
	shared := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	e, err := NewEngine(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := blockedOutput(t, e)
	defer shared.cli.ContainerRemove(context.Background(), c.ID(), container.RemoveOptions{Force: true, RemoveVolumes: true})
	reader, _, err := e.Start(ctx, anchor(t)+"/cat", Config{Image: testImage, Path: "/bin/cat"})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.cli.ContainerRemove(context.Background(), reader.ID(), container.RemoveOptions{Force: true, RemoveVolumes: true})
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }() // a stuck reader: Close must still end the goroutines
	if err := recv(t, closed, "Close"); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after the engine closed")
	}
	if st := c.Stat(); st.Phase != Exited || st.ExitCode != -1 {
		t.Errorf("stat after Close = %+v, want an unknown exit", st)
	}
	if _, _, err := e.Start(ctx, anchor(t), Config{Image: testImage, Path: "/bin/true"}); err == nil {
		t.Error("Start after Close succeeded")
	}
	c.Scrub() // returns, with the engine closed

	// Left without the circuit, a container has its stdin closed.
	resC, errC := shared.cli.ContainerWait(ctx, reader.ID(), container.WaitConditionNotRunning)
	select {
	case res := <-resC:
		if res.StatusCode != 0 {
			t.Errorf("cat left without stdin: exit code %d", res.StatusCode)
		}
	case err := <-errC:
		t.Errorf("waiting for cat left without stdin: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	e, err := NewEngine(ctx)
	if err == nil {
		e.Close()
		t.Fatal("NewEngine succeeded without an engine")
	}
	if want := "docker engine not reachable at unix:///nonexistent/docker.sock: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v, want it to start with %q", err, want)
	}
}

func TestContainerName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
	for _, tc := range []struct{ anchor, prefix string }{
		{"/X88550014d4c82e4d/docky", "circuit-X88550014d4c82e4d-docky-"},
		{"/X1/a b/ü/c", "circuit-X1-a-b-c-"},
		{"/", "circuit-"},
		{"/X1/" + strings.Repeat("x", 300), "circuit-X1-xxx"},
	} {
		n, err := containerName(tc.anchor)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(n, tc.prefix) || !valid.MatchString(n) || len(n) > 120 {
			t.Errorf("containerName(%q) = %q, want a valid name starting %q", tc.anchor, n, tc.prefix)
		}
	}
	a, _ := containerName("/X1/a")
	b, _ := containerName("/X1/a")
	if a == b {
		t.Errorf("two names for one anchor are both %q", a)
	}
}
