package circuit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// The test binary is the spawning program: its workers are copies of it.
func TestMain(m *testing.M) {
	Main()
	build.Main(m)
}

func add(a, b int) int { return a + b }

func divide(a, b int) (int, error) {
	if b == 0 {
		return 0, errors.New("division by zero")
	}
	return a / b, nil
}

func boom(msg string) { panic(msg) }

func feedback(ch Chan[int], v int) error { return ch.Send(v) }

// park blocks until its context ends (the worker is told to stop) or a
// minute passes, printing its greeting first, if any. (Output nobody reads
// keeps a dead worker's element for a while.)
func park(ctx context.Context, greeting string) error {
	if greeting != "" {
		fmt.Println(greeting)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return errors.New("parked for a minute: the test forgot me")
	}
}

// spawnFrom spawns a worker from inside a worker, then waits for it.
func spawnFrom(host string, a, b int) (int, error) {
	w, err := Spawn(host, nil, add, a, b)
	if err != nil {
		return 0, err
	}
	res, err := w.Wait(context.Background())
	if err != nil {
		return 0, err
	}
	return res[0].(int), nil
}

func describe(v any) string { return fmt.Sprint(v) }

func unregistered() {}

// holdings tells what a worker holds: its credential's name and parent,
// and its environment, one entry a line.
func holdings() (string, error) {
	b, err := os.ReadFile(os.Getenv(envCred))
	if err != nil {
		return "", err
	}
	cred, err := security.ParseCredential(b)
	if err != nil {
		return "", err
	}
	state.Lock()
	key := string(state.opts.Key)
	state.Unlock()
	return cred.Claims().Name + "\n" + cred.Claims().Parent + "\n" + strings.Join(append(os.Environ(), "client key="+key), "\n"), nil
}

// whenStopped waits for the worker to be asked to stop, through Context
// rather than an argument, and returns how it ended.
func whenStopped(greeting string) string {
	fmt.Println(greeting)
	select {
	case <-Context().Done():
		return "stopped cleanly"
	case <-time.After(time.Minute):
		return "never asked to stop"
	}
}

// spin keeps a core busy hashing until its context ends, printing a line
// first, and returns how many rounds it made.
func spin(ctx context.Context, greeting string) int {
	fmt.Println(greeting)
	sum := sha256.Sum256([]byte(greeting))
	n := 0
	for ctx.Err() == nil {
		for range 1000 {
			sum = sha256.Sum256(sum[:])
		}
		n++
	}
	return n
}

// stubborn ignores being asked to stop.
func stubborn(greeting string) {
	fmt.Println(greeting)
	time.Sleep(time.Minute)
}

func init() {
	Register(add, divide, boom, feedback, park, spawnFrom, describe, holdings, whenStopped, stubborn, spin)
}

var connectOnce sync.Mutex

// cluster starts n local servers and connects the package to the first.
func cluster(t *testing.T, n int, opts testcluster.Options) *testcluster.Cluster {
	t.Helper()
	connectOnce.Lock()
	t.Cleanup(connectOnce.Unlock)
	opts.Local = true
	cl := testcluster.Start(t, n, opts)
	var key []byte
	if cl.KeyFile != "" {
		var err error
		if key, err = os.ReadFile(cl.KeyFile); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Connect(context.Background(), client.Options{Addr: cl.Servers[0].URL, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		state.Lock()
		state.c = nil
		state.Unlock()
		uploads.Lock()
		uploads.at = nil
		uploads.Unlock()
	})
	return cl
}

func wait(t *testing.T, w *Worker) ([]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return w.Wait(ctx)
}

// noOrphans checks that no worker process and no anchor file is left.
func noOrphans(t *testing.T, cl *testcluster.Cluster) {
	t.Helper()
	c, err := Client()
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 10*time.Second, func() error {
		entries, err := c.List(context.Background(), "/...")
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Kind != "server" {
				return fmt.Errorf("left behind: %s (%s)", e.Path, e.Kind)
			}
		}
		return nil
	})
}

func TestSpawnResultsAndUploadOnce(t *testing.T) {
	cl := cluster(t, 2, testcluster.Options{Key: true})
	var uploaded atomic.Int32
	testHookUpload = func(_ string, r io.Reader) io.Reader { uploaded.Add(1); return r }
	defer func() { testHookUpload = nil }()

	host := cl.Servers[1].ID
	for i := range 3 {
		w, err := Spawn(host, nil, add, i, 40)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(w.ID(), "R") || len(w.ID()) != 17 || w.Server() != host {
			t.Fatalf("worker %v: bad ID or server", w)
		}
		res, err := wait(t, w)
		if err != nil || len(res) != 1 || res[0] != 40+i {
			t.Fatalf("add(%d, 40) = %v, %v", i, res, err)
		}
	}
	if n := uploaded.Load(); n != 1 {
		t.Fatalf("the binary was uploaded %d times to one server, want 1", n)
	}
	// The stored copy is named by its digest and verified.
	sum, size, _ := selfDigest()
	c, _ := Client()
	st, err := c.StatBinary(context.Background(), host, sum)
	if err != nil || !st.Present || st.Size != size || !strings.HasSuffix(st.Path, sum) {
		t.Fatalf("stored binary: %+v, %v", st, err)
	}

	// Results and errors of the function itself.
	w, err := Spawn(host, nil, divide, 7, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := wait(t, w); err != nil || res[0] != 3 {
		t.Fatalf("divide(7, 2) = %v, %v", res, err)
	}
	w, _ = Spawn(host, nil, divide, 1, 0)
	var we *WorkerError
	if _, err := wait(t, w); !errors.As(err, &we) || !strings.Contains(err.Error(), "division by zero") {
		t.Fatalf("divide(1, 0): %v", err)
	}
	w, _ = Spawn(host, nil, boom, "kaboom")
	if _, err := wait(t, w); !errors.As(err, &we) || !we.Panic || !strings.Contains(err.Error(), "kaboom") {
		t.Fatalf("boom: %v", err)
	}
	// A worker spawns a worker, with the key it was given.
	w, _ = Spawn(host, nil, spawnFrom, cl.Servers[0].ID, 20, 22)
	if res, err := wait(t, w); err != nil || res[0] != 42 {
		t.Fatalf("spawn from a worker: %v, %v", res, err)
	}
	noOrphans(t, cl)
}

// TestWorkerHoldsNoKey: on a keyed cluster a worker gets a credential of
// its own, naming it and its spawner, and nothing of the cluster key.
func TestWorkerHoldsNoKey(t *testing.T) {
	cl := cluster(t, 1, testcluster.Options{Key: true})
	key, err := os.ReadFile(cl.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	w, err := Spawn(cl.Servers[0].ID, nil, holdings)
	if err != nil {
		t.Fatal(err)
	}
	res, err := wait(t, w)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(res[0].(string), "\n")
	if lines[0] != "worker "+w.ID() || lines[1] != "key" {
		t.Fatalf("the worker's credential is %q, made for %q; want worker %s, made for the key", lines[0], lines[1], w.ID())
	}
	for _, e := range lines[2:] {
		if strings.Contains(e, strings.TrimSpace(string(key))) || strings.HasPrefix(e, "CIRCUIT_HMAC=") || strings.Contains(e, cl.KeyFile) {
			t.Fatalf("the worker holds the key: %q", e)
		}
		if k, ok := strings.CutPrefix(e, "client key="); ok && k != "" {
			t.Fatalf("the worker's client was given a key: %q", k)
		}
	}
	noOrphans(t, cl)
}

// TestRoundTrip is seed 001's example: a channel stretched between the
// spawner and a function on another host.
func TestRoundTrip(t *testing.T) {
	cl := cluster(t, 2, testcluster.Options{})
	ch, err := MakeChan[int]("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Scrub()
	w, err := Spawn(cl.Servers[1].ID, nil, feedback, ch, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ch.Recv(); err != nil || v != 1 {
		t.Fatalf("recv = %v, %v", v, err)
	}
	if _, err := wait(t, w); err != nil {
		t.Fatal(err)
	}
	ch.Close()
	if _, err := ch.Recv(); err != io.EOF {
		t.Fatalf("recv on a closed channel: %v, want io.EOF", err)
	}
}

func TestOutputAndKill(t *testing.T) {
	cl := cluster(t, 2, testcluster.Options{})
	ctx := context.Background()
	w, err := Spawn(cl.Servers[1].ID, []string{"/test/parked"}, park, "hello from a worker")
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.Output(ctx, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("hello from a worker\n"))
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "hello from a worker\n" {
		t.Fatalf("stdout: %q, %v", line, err)
	}
	if err := w.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, out)
	out.Close()
	var we *WorkerError
	if _, err := wait(t, w); !errors.As(err, &we) || !we.Died || !strings.Contains(err.Error(), "KILL") {
		t.Fatalf("wait for a killed worker: %v", err)
	}
	noOrphans(t, cl)
}

func TestSpawnErrors(t *testing.T) {
	cl := cluster(t, 2, testcluster.Options{})
	host := cl.Servers[1].ID
	for _, tc := range []struct {
		name string
		fn   any
		args []any
		dirs []string
		want string
	}{
		{"unregistered", unregistered, nil, nil, "not registered"},
		{"not a function", 42, nil, nil, "not a function"},
		{"unencodable argument", describe, []any{make(chan int)}, nil, "(chan int) cannot be encoded"},
		{"NaN", describe, []any{math.NaN()}, nil, "cannot be encoded"},
		{"a channel for a string", boom, []any{make(chan int)}, nil, "argument 1 of"},
		{"wrong type", add, []any{1, "2"}, nil, "argument 2 of"},
		{"too few", add, []any{1}, nil, "takes 2 argument(s), got 1"},
		{"bad directory", add, []any{1, 2}, []string{"/a/../b"}, `".." is not allowed`},
		{"server directory", add, []any{1, 2}, []string{"/" + host + "/x"}, "reserved for server IDs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Spawn(host, tc.dirs, tc.fn, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Spawn: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := Spawn(host, nil, unregistered); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("unregistered: %v does not wrap ErrNotRegistered", err)
	}
	if _, err := Spawn("X0000000000000001", nil, add, 1, 2); err == nil || !strings.Contains(err.Error(), "X0000000000000001") {
		t.Fatalf("unknown host: %v", err)
	}

	// An upload cut short: the server keeps nothing, and says so.
	testHookUpload = func(_ string, r io.Reader) io.Reader { return &failAfter{r: r, n: 3 << 20} }
	_, err := Spawn(host, []string{"/test/cut"}, add, 1, 2)
	testHookUpload = nil
	if err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("upload cut short: %v", err)
	}
	sum, _, _ := selfDigest()
	c, _ := Client()
	if st, err := c.StatBinary(context.Background(), host, sum); err != nil || st.Present {
		t.Fatalf("after a cut-short upload the server stores %+v, %v", st, err)
	}
	// The next spawn uploads again, whole.
	w, err := Spawn(host, nil, add, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := wait(t, w); err != nil || res[0] != 3 {
		t.Fatalf("after a failed upload: %v, %v", res, err)
	}
	noOrphans(t, cl)
}

// failAfter reads n bytes, then fails as a dropped connection would.
type failAfter struct {
	r io.Reader
	n int
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestHostLostMidSpawn kills the target server while the binary is on its
// way to it.
func TestHostLostMidSpawn(t *testing.T) {
	cl := cluster(t, 3, testcluster.Options{})
	victim := cl.Servers[2]
	testHookUpload = func(_ string, r io.Reader) io.Reader {
		return &killAfter{r: r, n: 2 << 20, kill: victim.Kill}
	}
	defer func() { testHookUpload = nil }()
	_, err := Spawn(victim.ID, []string{"/test/lost"}, add, 1, 2)
	var lost *client.HostLostError
	if err == nil || !(errors.As(err, &lost) || strings.Contains(err.Error(), "cut short")) || !strings.Contains(err.Error(), victim.ID) {
		t.Fatalf("host lost mid-spawn: %v", err)
	}
	t.Logf("host lost mid-spawn: %v", err)
	noOrphans(t, cl)
}

// killAfter reads n bytes, then kills the server and goes on reading.
type killAfter struct {
	r    io.Reader
	n    int
	kill func()
	once sync.Once
}

func (k *killAfter) Read(p []byte) (int, error) {
	if k.n <= 0 {
		k.once.Do(k.kill)
	}
	n, err := k.r.Read(p)
	k.n -= n
	return n, err
}

func TestAnchorFileSystem(t *testing.T) {
	cl := cluster(t, 3, testcluster.Options{})
	ctx := context.Background()
	spawn := func(host int, dirs ...string) *Worker {
		t.Helper()
		w, err := Spawn(cl.Servers[host].ID, dirs, park, "")
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	// Seed 003's example: one worker in three directories, one in two.
	a := spawn(1, "/firehose/clients", "/firehose/clients/dev", "/firehose/clients/spam")
	b := spawn(2, "/firehose/clients/search", "/firehose/clients/spam")
	want := func(lines ...string) string {
		slices.Sort(lines)
		return strings.Join(lines, "\n") + "\n"
	}
	ls := func(path string) testcluster.Result {
		t.Helper()
		return cl.Run("ls", path)
	}
	for _, tc := range []struct{ path, want string }{
		{"/firehose/clients", want(
			"/firehose/clients", "/firehose/clients/"+a.ID(),
			"/firehose/clients/dev", "/firehose/clients/search", "/firehose/clients/spam")},
		{"/firehose/clients/...", want(
			"/firehose/clients", "/firehose/clients/"+a.ID(),
			"/firehose/clients/dev", "/firehose/clients/dev/"+a.ID(),
			"/firehose/clients/search", "/firehose/clients/search/"+b.ID(),
			"/firehose/clients/spam", "/firehose/clients/spam/"+a.ID(), "/firehose/clients/spam/"+b.ID())},
	} {
		if r := ls(tc.path); r.Code != 0 || r.Stdout != tc.want {
			t.Fatalf("ls %s: exit %d\n%s%s\nwant\n%s", tc.path, r.Code, r.Stdout, r.Stderr, tc.want)
		}
	}
	if r := cl.Run("ls", "-l", "/firehose/clients/spam"); !strings.Contains(r.Stdout, "worker  /firehose/clients/spam/"+b.ID()+" -> "+b.Anchor()) {
		t.Fatalf("ls -l shows no worker's anchor:\n%s%s", r.Stdout, r.Stderr)
	}
	if r := ls("/"); strings.Contains(r.Stdout, "firehose") {
		t.Fatalf("ls / lists more than servers:\n%s", r.Stdout)
	}
	if r := ls("/..."); !strings.Contains(r.Stdout, "/firehose/clients/spam/"+b.ID()+"\n") || !strings.Contains(r.Stdout, b.Anchor()+"\n") {
		t.Fatalf("ls /... lacks the anchor file system or the worker's element:\n%s", r.Stdout)
	}
	if r := ls("/firehose/nothing"); r.Code != 3 || !strings.Contains(r.Stderr, "no such anchor directory") {
		t.Fatalf("ls of a missing directory: exit %d, %s", r.Code, r.Stderr)
	}

	// 4kill of the search directory kills b, whose other files go too.
	if r := cl.Run("kill", "-v", "/firehose/clients/search/..."); r.Code != 0 || r.Stdout != "/firehose/clients/search/"+b.ID()+"\n" {
		t.Fatalf("kill search/...: exit %d, %q %s", r.Code, r.Stdout, r.Stderr)
	}
	if r := ls("/firehose/clients/..."); strings.Contains(r.Stdout, b.ID()) || strings.Contains(r.Stdout, "/search") {
		t.Fatalf("after kill, b or its directory is still listed:\n%s", r.Stdout)
	}
	if _, err := wait(t, b); err == nil {
		t.Fatal("a killed worker returned no error")
	}
	// A worker that ends by itself leaves its directories too.
	c := spawn(0, "/firehose/clients/spam")
	if err := c.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	wait(t, c)
	if r := ls("/firehose/clients/spam"); strings.Contains(r.Stdout, c.ID()) {
		t.Fatalf("a dead worker is listed:\n%s", r.Stdout)
	}
	if r := cl.Run("kill", "/firehose/clients/..."); r.Code != 0 {
		t.Fatalf("kill /firehose/clients/...: exit %d %s", r.Code, r.Stderr)
	}
	if r := ls("/firehose"); r.Code != 3 {
		t.Fatalf("an empty directory exists: exit %d\n%s", r.Code, r.Stdout)
	}
	if r := cl.Run("kill", "/firehose/..."); r.Code != 3 {
		t.Fatalf("kill with nothing to kill: exit %d %s", r.Code, r.Stderr)
	}
	noOrphans(t, cl)
}

// TestFilesVanishWithTheirHost kills a server with kill -9: its workers'
// files leave the listing once the membership sees it gone.
func TestFilesVanishWithTheirHost(t *testing.T) {
	cl := cluster(t, 3, testcluster.Options{})
	victim := cl.Servers[2]
	w, err := Spawn(victim.ID, []string{"/doomed"}, park, "")
	if err != nil {
		t.Fatal(err)
	}
	if r := cl.Run("ls", "/doomed"); !strings.Contains(r.Stdout, w.ID()) {
		t.Fatalf("ls /doomed:\n%s%s", r.Stdout, r.Stderr)
	}
	start := time.Now()
	victim.Kill()
	c, _ := Client()
	testsupport.Eventually(t, 15*time.Second, func() error {
		entries, err := c.List(context.Background(), "/doomed")
		if errors.Is(err, client.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("the files of a dead host's worker are still listed: %v (%v)", entries, err)
	})
	t.Logf("FIGURE files of a kill -9'd host gone after %v", time.Since(start).Round(time.Millisecond))
	var lost *client.HostLostError
	if _, err := wait(t, w); !errors.As(err, &lost) {
		t.Logf("wait for a worker of a lost host: %v", err)
	}
}

// TestStopContext: kill -grace asks a worker to stop: circuit.Context ends,
// and a worker that returns then ends well, with its result; one that does
// not is killed when the grace period is over. Outside a worker the
// context never ends.
func TestStopContext(t *testing.T) {
	cl := cluster(t, 1, testcluster.Options{})
	ctx := context.Background()
	if Context().Err() != nil {
		t.Fatal("the context of a spawning program ended")
	}
	c, err := Client()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fn   any
	}{{"returns", whenStopped}, {"stubborn", stubborn}} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := Spawn(cl.Servers[0].ID, []string{"/test/stop/" + tc.name}, tc.fn, "up")
			if err != nil {
				t.Fatal(err)
			}
			out, err := w.Output(ctx, "stdout")
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			line := make([]byte, 3)
			if _, err := io.ReadFull(out, line); err != nil { // it runs, and watches its context
				t.Fatal(err)
			}
			start := time.Now()
			killed, err := c.KillGrace(ctx, "/test/stop/"+tc.name+"/...", 2*time.Second)
			if err != nil || len(killed) != 1 {
				t.Fatalf("kill -grace: %v, %v", killed, err)
			}
			took := time.Since(start)
			go io.Copy(io.Discard, out)
			res, err := wait(t, w)
			var we *WorkerError
			switch tc.name {
			case "returns":
				if err != nil || len(res) != 1 || res[0] != "stopped cleanly" || took > 2*time.Second {
					t.Fatalf("a worker asked to stop: %v, %v after %v; want its result at once", res, err, took)
				}
			case "stubborn":
				if !errors.As(err, &we) || !we.Died || !strings.Contains(err.Error(), "KILL") || took < 2*time.Second {
					t.Fatalf("a worker that ignores the request: %v after %v; want killed after the grace period", err, took)
				}
			}
		})
	}
	noOrphans(t, cl)
}

// TestProfileWorker: a worker's CPU profile shows its own function; its
// heap, goroutines, blocking and trace are taken too; one CPU profile at a
// time; circuit stk's text of a worker names the function; a process that
// is no worker, and a bad kind, are refused.
func TestProfileWorker(t *testing.T) {
	cl := cluster(t, 2, testcluster.Options{Key: true})
	ctx := context.Background()
	c, err := Client()
	if err != nil {
		t.Fatal(err)
	}
	w, err := Spawn(cl.Servers[1].ID, []string{"/test/busy"}, spin, "spinning")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Kill(ctx)
	out, err := w.Output(ctx, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	line := make([]byte, len("spinning\n"))
	if _, err := io.ReadFull(out, line); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, out)
	file := "/test/busy/" + w.ID()
	dir := t.TempDir()
	var cpu strings.Builder
	busy := make(chan error, 1)
	go func() {
		// A second CPU profile while the first runs is refused.
		time.Sleep(300 * time.Millisecond)
		busy <- c.Profile(ctx, file, client.ProfileCPU, time.Second, io.Discard)
	}()
	if err := c.Profile(ctx, file, client.ProfileCPU, 3*time.Second, &cpu); err != nil {
		t.Fatal(err)
	}
	if err := <-busy; !errors.Is(err, client.ErrPrecondition) || !strings.Contains(err.Error(), "one at a time") {
		t.Errorf("a second CPU profile at once: %v", err)
	}
	pf := dir + "/cpu.pprof"
	if err := os.WriteFile(pf, []byte(cpu.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	top, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=200", pf).CombinedOutput()
	if err != nil || !strings.Contains(string(top), "circuit.spin") {
		t.Fatalf("go tool pprof -top of the worker's CPU profile: %v\n%s", err, top)
	}
	for _, kind := range []string{client.ProfileHeap, client.ProfileGoroutine, client.ProfileBlock, client.ProfileTrace} {
		var b strings.Builder
		d := time.Duration(0)
		if kind == client.ProfileBlock || kind == client.ProfileTrace {
			d = 300 * time.Millisecond
		}
		if err := c.Profile(ctx, w.Anchor(), kind, d, &b); err != nil || b.Len() == 0 {
			t.Errorf("%s profile of the worker by its anchor: %d bytes, %v", kind, b.Len(), err)
		}
	}
	var stk strings.Builder
	if err := c.Profile(ctx, file, client.ProfileStacks, 0, &stk); err != nil || !strings.Contains(stk.String(), "circuit.spin") {
		t.Errorf("the worker's stacks: %v\n%s", err, stk.String())
	}
	if err := c.Profile(ctx, file, "flame", 0, io.Discard); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("a bad kind: %v", err)
	}
	h, err := c.MakeProcAt(ctx, "/"+cl.Servers[1].ID+"/plain", client.Cmd{Path: "/bin/sleep", Args: []string{"30"}, Scrub: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Signal(ctx, "KILL")
	if err := c.Profile(ctx, "/"+cl.Servers[1].ID+"/plain", client.ProfileHeap, 0, io.Discard); !errors.Is(err, client.ErrPrecondition) {
		t.Errorf("profiling a process that is no worker: %v", err)
	}
	var srv strings.Builder
	if err := c.Profile(ctx, "/"+cl.Servers[1].ID, client.ProfileGoroutine, 0, &srv); err != nil || srv.Len() == 0 {
		t.Errorf("a server's goroutine profile: %v", err)
	}
}

// whisper writes to stderr and ends as asked: returning, failing or
// panicking.
func whisper(how string) (string, error) {
	fmt.Fprintln(os.Stderr, "last words of a worker that "+how)
	switch how {
	case "fails":
		return "", errors.New("it did not work")
	case "panics":
		panic("it broke")
	}
	return "done", nil
}

// spawnChild spawns whisper from inside a worker and waits for it.
func spawnChild(host string) (string, error) {
	w, err := Spawn(host, []string{"/test/grave/children"}, whisper, "returns")
	if err != nil {
		return "", err
	}
	_, err = w.Wait(context.Background())
	return w.ID(), err
}

func init() { Register(whisper, spawnChild) }

// TestGraveyard: every worker that ends leaves a record on the server that
// ran it: who it was, who spawned it (a client, or the worker that did),
// why it ended, and its stderr's last words; listed by directory and in
// all, newest first; kept across a restart of a server with -var.
func TestGraveyard(t *testing.T) {
	varDir := t.TempDir()
	cl := cluster(t, 1, testcluster.Options{Key: true})
	kept := cl.StartServer("-j", cl.Servers[0].URL, "-var", varDir, "-timing", "local")
	cl.WaitMembers(2)
	ctx := context.Background()
	c, err := Client()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, how := range []string{"returns", "fails", "panics"} {
		w, err := Spawn(kept.ID, []string{"/test/grave/" + how}, whisper, how)
		if err != nil {
			t.Fatal(err)
		}
		wait(t, w)
		ids[how] = w.ID()
	}
	parent, err := Spawn(kept.ID, []string{"/test/grave/parents"}, spawnChild, kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	res, err := wait(t, parent)
	if err != nil {
		t.Fatal(err)
	}
	child := res[0].(string)
	sleeper, err := Spawn(kept.ID, []string{"/test/grave/killed"}, park, "")
	if err != nil {
		t.Fatal(err)
	}
	sleeper.Kill(ctx)
	wait(t, sleeper)

	var recs []client.GraveRecord
	testsupport.Eventually(t, 10*time.Second, func() error {
		if recs, err = c.Graveyard(ctx, "/test/grave/..."); err != nil {
			return err
		}
		if len(recs) != 6 {
			return fmt.Errorf("%d records, want 6", len(recs))
		}
		for _, r := range recs {
			if r.ID == ids["returns"] && !strings.Contains(r.Stderr, "last words") {
				return errors.New("the stderr of a returned worker is not in yet")
			}
		}
		return nil
	})
	byID := map[string]client.GraveRecord{}
	for i, r := range recs {
		byID[r.ID] = r
		if i > 0 && r.End.After(recs[i-1].End) {
			t.Errorf("records not newest first: %v after %v", r.End, recs[i-1].End)
		}
	}
	for how, want := range map[string]string{"returns": "returned", "fails": "error: it did not work", "panics": "panic: it broke"} {
		r := byID[ids[how]]
		if r.Cause != want || r.Func != "github.com/circuit-project/circuit.whisper" || r.Server != kept.ID || len(r.Binary) != 64 ||
			!strings.HasPrefix(r.Parent, "client key at ") || !strings.Contains(r.Stderr, "last words of a worker that "+how) || !r.End.After(r.Start) {
			t.Errorf("the record of a worker that %s: %+v", how, r)
		}
	}
	if r := byID[child]; r.Parent != parent.ID() || r.Cause != "returned" {
		t.Errorf("the child's record: %+v; want its parent %s", r, parent.ID())
	}
	if r := byID[sleeper.ID()]; r.Cause != "signal KILL" {
		t.Errorf("the killed worker's record: %+v", r)
	}
	if only, err := c.Graveyard(ctx, "/test/grave/fails"); err != nil || len(only) != 1 || only[0].ID != ids["fails"] {
		t.Errorf("one directory's records: %+v, %v", only, err)
	}
	if all, err := c.Graveyard(ctx, "/"); err != nil || len(all) < 6 {
		t.Errorf("every record: %d, %v", len(all), err)
	}
	// A restart with the same -var keeps them.
	kept.Signal(syscall.SIGTERM)
	kept.Wait(10 * time.Second)
	again := cl.StartServer("-j", cl.Servers[0].URL, "-var", varDir, "-timing", "local")
	testsupport.Eventually(t, 10*time.Second, func() error {
		recs, err := c.Graveyard(ctx, "/test/grave/...")
		if err != nil {
			return err
		}
		if len(recs) != 6 || recs[0].Server != kept.ID {
			return fmt.Errorf("after a restart: %d records", len(recs))
		}
		return nil
	})
	_ = again
}

// TestHostLostRecorded: a worker whose host is lost leaves a record, with
// the cause "host lost", on the server it was spawned through, within 5 s.
func TestHostLostRecorded(t *testing.T) {
	cl := cluster(t, 2, testcluster.Options{})
	c, err := Client()
	if err != nil {
		t.Fatal(err)
	}
	w, err := Spawn(cl.Servers[1].ID, []string{"/test/lost"}, park, "")
	if err != nil {
		t.Fatal(err)
	}
	// One that ends well is not recorded as lost.
	done, err := Spawn(cl.Servers[1].ID, []string{"/test/lost"}, add, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	wait(t, done)
	// Its end must have reached the dial-in server's watch before the
	// host goes (a worker that ends as its host dies is lost to it): the
	// watch's Proc.Wait has ended on the host, after the spawner's own.
	testsupport.Eventually(t, 10*time.Second, func() error {
		waits := 0
		begun := map[uint64]bool{} // the Proc.Wait operations on the returned worker
		err := c.Log(context.Background(), cl.Servers[1].ID, client.LogOptions{}, func(r client.LogRecord) error {
			switch {
			case r.Op == "Proc.Wait" && r.Event == "begin" && r.Path == done.Anchor():
				begun[r.Seq] = true
			case r.Event == "end" && begun[r.Seq]:
				waits++
			}
			return nil
		})
		if err == nil && waits < 2 {
			err = fmt.Errorf("%d waits for the returned worker have ended on its host, want 2", waits)
		}
		return err
	})
	cl.Servers[1].Kill()
	start := time.Now()
	testsupport.Eventually(t, 5*time.Second, func() error {
		recs, err := c.Graveyard(context.Background(), "/test/lost")
		var incomplete *client.IncompleteError
		if err != nil && !errors.As(err, &incomplete) {
			return err
		}
		for _, r := range recs {
			if r.ID == done.ID() {
				return fmt.Errorf("a worker that returned is recorded: %+v", r)
			}
		}
		if len(recs) != 1 || recs[0].ID != w.ID() || recs[0].Cause != "host lost" || recs[0].Server != cl.Servers[1].ID ||
			recs[0].Func != "github.com/circuit-project/circuit.park" || !strings.HasPrefix(recs[0].Parent, "client ") {
			return fmt.Errorf("records %+v", recs)
		}
		return nil
	})
	t.Logf("recorded as lost %v after its host was killed", time.Since(start))
}
