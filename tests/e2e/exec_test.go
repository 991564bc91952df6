package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// tmux drives a real terminal: a tmux server of the test's own (-L), one
// window of the given size running a shell command.
type tmux struct {
	t      *testing.T
	socket string
}

func newTmux(t *testing.T, cols, rows int, command string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tmux is missing")
		}
		t.Skip("tmux is missing (Debian's tmux)")
	}
	tm := &tmux{t: t, socket: "circuit-test-" + filepath.Base(t.TempDir())}
	tm.run("new-session", "-d", "-s", "t", "-x", itoa(cols), "-y", itoa(rows), command)
	t.Cleanup(func() { exec.Command("tmux", "-L", tm.socket, "kill-server").Run() })
	return tm
}

func itoa(n int) string { return strconv.Itoa(n) }

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (tm *tmux) screen() string { return tm.run("capture-pane", "-p", "-t", "t") }

// waitFor waits until the screen shows s.
func (tm *tmux) waitFor(s string) {
	tm.t.Helper()
	testsupport.Eventually(tm.t, 15*time.Second, func() error {
		out, err := exec.Command("tmux", "-L", tm.socket, "capture-pane", "-p", "-t", "t").CombinedOutput()
		if err == nil && !strings.Contains(string(out), s) {
			err = fmt.Errorf("the terminal has not shown %q; it shows:\n%s", s, out)
		}
		return err
	})
}

// TestExecTerminal types into `circuit exec -t` in a real terminal: a
// command, a resize, Ctrl-C to a remote sleep, and the exit code; the
// local terminal is as it was afterwards, and the element is gone.
func TestExecTerminal(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{})
	s := cl.Servers[0]
	dir := t.TempDir()
	before, after, rc := filepath.Join(dir, "before"), filepath.Join(dir, "after"), filepath.Join(dir, "rc")
	script := "stty -g > " + before + "; " + cl.Bin + " exec -t -d " + s.URL + " /" + s.ID + " -- /bin/sh; echo $? > " + rc + "; stty -g > " + after + "; sleep 60"
	tm := newTmux(t, 120, 40, "sh -c '"+script+"'")

	tm.waitFor("#") // the prompt (capture-pane drops its trailing space)
	tm.run("send-keys", "-t", "t", "echo hi-$((6*7))", "Enter")
	tm.waitFor("hi-42")
	tm.run("send-keys", "-t", "t", "stty size", "Enter")
	tm.waitFor("40 120")
	tm.run("resize-window", "-t", "t", "-x", "100", "-y", "30")
	// The resize travels apart from the keystrokes (SIGWINCH, then a
	// Resize call), so a stty typed at once may run before it lands:
	// ask again until the remote terminal has the new size.
	testsupport.Eventually(t, 15*time.Second, func() error {
		tm.run("send-keys", "-t", "t", "stty size", "Enter")
		time.Sleep(200 * time.Millisecond) // the answer's way back, before asking again
		if screen := tm.screen(); !strings.Contains(screen, "30 100") {
			return fmt.Errorf("the terminal has not shown \"30 100\"; it shows:\n%s", screen)
		}
		return nil
	})
	// The quotes keep the typed line from matching what is waited for.
	tm.run("send-keys", "-t", "t", `echo sl""eeping; sleep 100`, "Enter")
	tm.waitFor("sleeping")
	tm.run("send-keys", "-t", "t", "C-c")
	tm.run("send-keys", "-t", "t", "echo after-$?", "Enter")
	tm.waitFor("after-130") // 128 + SIGINT: the remote sleep got the Ctrl-C
	tm.run("send-keys", "-t", "t", "exit 3", "Enter")
	testsupport.Eventually(t, 15*time.Second, func() error {
		if b, err := os.ReadFile(after); err != nil || len(b) == 0 {
			return fmt.Errorf("exec has not ended (%s: %q, %v); the screen:\n%s", after, b, err, tm.screen())
		}
		return nil
	})
	if b, _ := os.ReadFile(rc); strings.TrimSpace(string(b)) != "3" {
		t.Fatalf("exec exited with %q, want 3", b)
	}
	b1, _ := os.ReadFile(before)
	b2, _ := os.ReadFile(after)
	if string(b1) != string(b2) {
		t.Fatalf("the terminal was not restored: %q, then %q", b1, b2)
	}
	if r := cl.Run("ls", "/"+s.ID+"/..."); strings.Contains(r.Stdout, "circuit-exec/") {
		t.Fatalf("exec left its element:\n%s", r.Stdout)
	}
	// Without -t, exec passes stdin, stdout, stderr and the exit code.
	r := cl.RunVia(s, "piped\n", "exec", "/"+s.ID, "--", "sh", "-c", "cat; echo err >&2; exit 4")
	if r.Code != 4 || r.Stdout != "piped\n" || r.Stderr != "err\n" {
		t.Fatalf("exec without -t: %+v", r)
	}
	// -t needs a terminal.
	if r := cl.Run("exec", "-t", "/"+s.ID, "--", "true"); r.Code != 2 || !strings.Contains(r.Stderr, "not a terminal") {
		t.Fatalf("exec -t without a terminal: %+v", r)
	}
}
