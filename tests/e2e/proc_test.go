package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

type procPeek struct {
	Phase    string
	Exit     *string
	ExitCode int
	Signal   string
	PID      int
	Cmd      struct{ Path string }
}

func peekProc(t *testing.T, cl *testcluster.Cluster, path string) procPeek {
	t.Helper()
	r := cl.Run("peek", path)
	var p procPeek
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
		t.Fatalf("peek %s printed %q (%s): %v", path, r.Stdout, r.Stderr, err)
	}
	return p
}

// TestSeedProcessWalkthrough runs seed 000's process commands as printed.
func TestSeedProcessWalkthrough(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{})
	x := "/" + cl.Servers[1].ID // on the other server: relayed
	pippi := x + "/pippi"
	r := cl.RunVia(cl.Servers[0], "{\n\"Path\": \"/bin/ls\",\n\"Args\":[\"/\"]\n}\n", "mkproc", pippi)
	if r.Code != 0 {
		t.Fatalf("mkproc: %+v", r)
	}
	if p := peekProc(t, cl, pippi); p.Cmd.Path != "/bin/ls" || p.PID == 0 {
		t.Fatalf("peek: %+v", p)
	}
	if r := cl.RunVia(cl.Servers[0], "", "stdin", pippi); r.Code != 0 {
		t.Fatalf("stdin: %+v", r)
	}
	r = cl.Run("stdout", pippi)
	if r.Code != 0 || !strings.Contains(r.Stdout, "bin\n") || !strings.Contains(r.Stdout, "proc\n") {
		t.Fatalf("stdout: %+v", r)
	}
	if r := cl.Run("ls", "-l", x+"/..."); strings.TrimSpace(r.Stdout) != "proc    "+pippi {
		t.Fatalf("ls -l: %q", r.Stdout)
	}
	if r := cl.Run("scrub", pippi); r.Code != 0 {
		t.Fatalf("scrub: %+v", r)
	}
	if r := cl.Run("ls", x+"/..."); r.Stdout != "" {
		t.Fatalf("after scrub: %q", r.Stdout)
	}
}

func TestMkprocInputAndErrors(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{})
	x := "/" + cl.Servers[0].ID
	run := func(stdin string, args ...string) testcluster.Result {
		return cl.RunVia(cl.Servers[0], stdin, args...)
	}
	// Trailing commas, as the seeds write JSON, and -scrub.
	if r := run(`{"Path": "/bin/sh", "Args": ["-c", "exit 0",], "Env": ["A=1",],}`, "mkproc", "-scrub", x+"/ok"); r.Code != 0 {
		t.Fatalf("trailing commas: %+v", r)
	}
	testsupport.Eventually(t, 5*time.Second, func() error { return listsNothing(cl, x+"/...", "-scrub left the element") })

	cases := []struct {
		name, stdin string
		args        []string
		code        int
		says        string
	}{
		{"missing binary", `{"Path": "/no/such/binary"}`, []string{"mkproc", x + "/bad"}, 1, "no such file or directory"},
		{"unknown field", `{"Pth": "/bin/ls"}`, []string{"mkproc", x + "/bad"}, 2, `unknown field "Pth"`},
		{"no path", `{"Args": ["x"]}`, []string{"mkproc", x + "/bad"}, 2, `no "Path"`},
		{"not JSON", `Path=/bin/ls`, []string{"mkproc", x + "/bad"}, 2, "the command on stdin"},
		{"server anchor", `{"Path": "/bin/ls"}`, []string{"mkproc", x}, 2, "below a server"},
		{"bad path", `{"Path": "/bin/ls"}`, []string{"mkproc", x + "/../etc"}, 2, `".." is not allowed`},
	}
	for _, tc := range cases {
		r := run(tc.stdin, tc.args...)
		if r.Code != tc.code || !strings.Contains(r.Stderr, tc.says) {
			t.Errorf("%s: code %d stderr %q; want %d saying %q", tc.name, r.Code, r.Stderr, tc.code, tc.says)
		}
	}
	if r := cl.Run("ls", x+"/..."); r.Stdout != "" {
		t.Fatalf("failed mkprocs left %q", r.Stdout)
	}
	// Occupied anchor; unknown signal.
	if r := run(`{"Path": "/bin/sleep", "Args": ["1000"]}`, "mkproc", x+"/busy"); r.Code != 0 {
		t.Fatal(r)
	}
	if r := run(`{"Path": "/bin/true"}`, "mkproc", x+"/busy"); r.Code == 0 || !strings.Contains(r.Stderr, "holds a proc") {
		t.Errorf("occupied: %+v", r)
	}
	if r := cl.Run("signal", "BOGUS", x+"/busy"); r.Code != 2 || !strings.Contains(r.Stderr, "KILL, PIPE") {
		t.Errorf("unknown signal: %+v", r)
	}
}

func TestWaitExitCodes(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{})
	x := "/" + cl.Servers[0].ID
	mk := func(name, script string) {
		t.Helper()
		if r := cl.RunVia(cl.Servers[0], `{"Path": "/bin/sh", "Args": ["-c", "`+script+`"]}`, "mkproc", x+"/"+name); r.Code != 0 {
			t.Fatalf("mkproc %s: %+v", name, r)
		}
	}
	mk("three", "exit 3")
	r := cl.Run("wait", x+"/three")
	if r.Code != 3 || !strings.Contains(r.Stdout, `"ExitCode": 3`) {
		t.Fatalf("wait: %+v", r)
	}
	mk("sleeper", "exec sleep 1000")
	p := peekProc(t, cl, x+"/sleeper")
	if p.Phase != "running" || p.Exit != nil {
		t.Fatalf("peek of a running process: %+v", p)
	}
	if r := cl.Run("signal", "KILL", x+"/sleeper"); r.Code != 0 {
		t.Fatal(r)
	}
	if r := cl.Run("wait", x+"/sleeper"); r.Code != 137 || !strings.Contains(r.Stdout, `"Signal": "KILL"`) {
		t.Fatalf("wait after KILL: %+v", r)
	}
	mk("zero", "exit 0")
	mk("five", "exit 5")
	if r := cl.Run("waitall", x+"/zero", x+"/five", x+"/three"); r.Code != 5 || strings.Count(r.Stdout, `"Phase": "exited"`) != 3 {
		t.Fatalf("waitall: %+v", r)
	}
}

// TestServerStopEndsProcesses: a server's processes do not outlive it.
func TestServerStopEndsProcesses(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{})
	x := "/" + cl.Servers[0].ID
	if r := cl.RunVia(cl.Servers[0], `{"Path": "/bin/sh", "Args": ["-c", "trap '' TERM; sleep 1000 & wait"]}`, "mkproc", x+"/stubborn"); r.Code != 0 {
		t.Fatal(r)
	}
	pid := peekProc(t, cl, x+"/stubborn").PID
	cl.Servers[0].Signal(syscall.SIGTERM)
	if err := cl.Servers[0].Wait(15 * time.Second); err != nil {
		t.Fatalf("server stop: %v", err)
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Fatalf("process %d outlived its server: %v", pid, err)
	}
}

// TestGigabyteStdout streams 1 GiB of a remote process's stdout through the
// CLI and checks the bytes and the server's memory.
func TestGigabyteStdout(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 1 GiB")
	}
	cl := testcluster.Start(t, 2, testcluster.Options{})
	host := cl.Servers[1]
	path := "/" + host.ID + "/gig"
	const total = 1 << 30
	if r := cl.RunVia(cl.Servers[0], `{"Path": "/usr/bin/head", "Args": ["-c", "`+strconv.Itoa(total)+`", "/dev/zero"]}`, "mkproc", path); r.Code != 0 {
		t.Fatal(r)
	}
	cmd := exec.Command(cl.Bin, "stdout", "-d", cl.Servers[0].URL, path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // sample both servers' memory while the bytes flow
		defer close(sampled)
		for {
			for _, p := range cl.Servers {
				if kib, err := rss(p.Cmd.Process.Pid); err == nil && int64(kib) > peak.Load() {
					peak.Store(int64(kib))
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	n, err := io.Copy(io.Discard, out)
	close(stop)
	<-sampled
	if err != nil || n != total {
		t.Fatalf("read %d bytes, %v; want %d", n, err, total)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("1 GiB in %v; peak server RSS %d MiB", time.Since(start), peak.Load()/1024)
	if peak.Load() > 200<<10 {
		t.Fatalf("a server's memory grew to %d MiB while streaming", peak.Load()/1024)
	}
}

func rss(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, os.ErrNotExist
}

// TestStdinThroughTheCLI pipes data into a remote process with circuit stdin
// and reads it back with circuit stdout; a second reader is refused.
func TestStdinThroughTheCLI(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{})
	path := "/" + cl.Servers[1].ID + "/upper"
	if r := cl.RunVia(cl.Servers[0], `{"Path": "/usr/bin/tr", "Args": ["a-z", "A-Z"]}`, "mkproc", path); r.Code != 0 {
		t.Fatal(r)
	}
	if r := cl.RunVia(cl.Servers[0], "hello, circuit\n", "stdin", path); r.Code != 0 {
		t.Fatalf("stdin: %+v", r)
	}
	if r := cl.Run("stdout", path); r.Code != 0 || r.Stdout != "HELLO, CIRCUIT\n" {
		t.Fatalf("stdout: %+v", r)
	}
	if r := cl.Run("stdout", path); r.Code == 0 || !strings.Contains(r.Stderr, "stdout") {
		t.Fatalf("stdout read twice: %+v", r)
	}
	if r := cl.RunVia(cl.Servers[0], "more", "stdin", path); r.Code == 0 || !strings.Contains(r.Stderr, "closed") {
		t.Fatalf("stdin after EOF: %+v", r)
	}
}

// TestScrubAfterOutputRead: with -scrub, the output of a process that has
// already exited can still be read by path; then the element goes.
func TestScrubAfterOutputRead(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{})
	path := "/" + cl.Servers[0].ID + "/quick"
	if r := cl.RunVia(cl.Servers[0], `{"Path": "/bin/echo", "Args": ["hello from circuit"]}`, "mkproc", "-scrub", path); r.Code != 0 {
		t.Fatal(r)
	}
	if r := cl.Run("wait", path); r.Code != 0 {
		t.Fatalf("wait: %+v", r)
	}
	if r := cl.Run("stdout", path); r.Code != 0 || r.Stdout != "hello from circuit\n" {
		t.Fatalf("stdout of an exited -scrub process: %+v", r)
	}
	cl.Run("stderr", path)
	testsupport.Eventually(t, 5*time.Second, func() error {
		return listsNothing(cl, "/"+cl.Servers[0].ID+"/...", "the -scrub element stayed after its output was read")
	})
}

// listsNothing returns nil once `ls path` prints nothing, and otherwise an
// error saying what it printed.
func listsNothing(cl *testcluster.Cluster, path, what string) error {
	if r := cl.Run("ls", path); r.Stdout != "" {
		return fmt.Errorf("%s: ls %s: exit %d\n%s%s", what, path, r.Code, r.Stdout, r.Stderr)
	}
	return nil
}
