package client_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// runShellStdin is seed 002's subroutine, verbatim but for t.
func runShellStdin(host client.Anchor, cmd, stdin string) (string, error) {
	job := host.Walk([]string{"shelljob", strconv.Itoa(rand.Int())})
	proc, _ := job.MakeProc(client.Cmd{
		Path:  "/bin/sh",
		Dir:   "/tmp",
		Args:  []string{"-c", cmd},
		Scrub: true,
	})
	go func() {
		io.Copy(proc.Stdin(), bytes.NewBufferString(stdin))
		proc.Stdin().Close() // Must close the standard input of the shell process.
	}()
	proc.Stderr().Close() // Close to indicate discarding standard error
	var buf bytes.Buffer
	io.Copy(&buf, proc.Stdout())
	stat, _ := proc.Wait()
	return buf.String(), stat.Exit
}

// twoServers dials into the first of two servers and returns the anchor of
// the second, so every call is relayed.
func twoServers(t *testing.T) (*client.Client, client.Anchor) {
	servers := testcluster.StartInProcess(t, 2, nil)
	c := client.Dial(servers[0].URL().String(), nil)
	t.Cleanup(func() { c.Close() })
	return c, c.Walk([]string{servers[1].ID().String()})
}

func TestSeedRunShell(t *testing.T) {
	c, host := twoServers(t)
	out, err := runShellStdin(host, "tr a-z A-Z; echo oops >&2", "hello, circuit\n")
	if err != nil || out != "HELLO, CIRCUIT\n" {
		t.Fatalf("runShellStdin = %q, %v", out, err)
	}
	out, err = runShellStdin(host, "echo partial; exit 7", "")
	var ee *client.ExitError
	if out != "partial\n" || !errors.As(err, &ee) || ee.Code != 7 {
		t.Fatalf("failing shell = %q, %v; want the output and exit code 7 even with Scrub", out, err)
	}
	// Scrub: true removed both anchors.
	testsupport.Eventually(t, 5*time.Second, func() error {
		if v := host.View(); len(v) != 0 {
			return fmt.Errorf("shell jobs left behind: %v", v)
		}
		return nil
	})
	_ = c
}

func TestOutputArrivesBeforeStdinCloses(t *testing.T) {
	_, host := twoServers(t)
	p, err := host.Walk([]string{"talk"}).MakeProc(client.Cmd{Path: "/bin/sh", Args: []string{"-c", "echo ready; read x; echo got $x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Scrub()
	r := bufio.NewReader(p.Stdout())
	line, err := r.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	io.WriteString(p.Stdin(), "ping\n")
	if line, _ = r.ReadString('\n'); line != "got ping\n" {
		t.Fatalf("second line %q", line)
	}
	p.Stdin().Close()
	if st, err := p.Wait(); err != nil || st.ExitCode != 0 || st.Exit != nil {
		t.Fatalf("wait: %+v, %v", st, err)
	}
}

func TestStreamRules(t *testing.T) {
	c, host := twoServers(t)
	ctx := context.Background()
	// 64 MiB that nobody reads at first: back-pressure holds the process.
	const total = 64 << 20
	a := host.Walk([]string{"big"})
	p, err := a.MakeProc(client.Cmd{Path: "/usr/bin/head", Args: []string{"-c", strconv.Itoa(total), "/dev/zero"}})
	if err != nil {
		t.Fatal(err)
	}
	h := c.ProcAt(a.Path())
	second, err := h.OpenStream(ctx, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(second, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if p.Peek().Phase != "running" {
		t.Fatal("the process finished though 63 MiB of its output were unread: no back-pressure")
	}
	// A second concurrent reader is refused.
	if _, err := h.OpenStream(ctx, "stdout"); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("second reader: %v", err)
	}
	n, err := io.Copy(io.Discard, second)
	if err != nil || n != total-(1<<20) {
		t.Fatalf("read %d more bytes, %v; want %d", n, err, total-(1<<20))
	}
	second.Close()
	if st, _ := p.Wait(); st.ExitCode != 0 {
		t.Fatalf("head: %+v", st)
	}

	// Closing stdout without reading discards: the process is not blocked.
	q, err := host.Walk([]string{"discard"}).MakeProc(client.Cmd{Path: "/usr/bin/head", Args: []string{"-c", strconv.Itoa(total), "/dev/zero"}})
	if err != nil {
		t.Fatal(err)
	}
	q.Stdout().Close()
	done := make(chan client.ProcStat)
	go func() { st, _ := q.Wait(); done <- st }()
	select {
	case st := <-done:
		if st.ExitCode != 0 {
			t.Fatalf("discarded head: %+v", st)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a process whose stdout was closed stayed blocked")
	}
}

func TestSignalsReachTheGroup(t *testing.T) {
	_, host := twoServers(t)
	p, err := host.Walk([]string{"group"}).MakeProc(client.Cmd{Path: "/bin/sh", Args: []string{"-c", "sleep 1000 & echo $!; wait"}})
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(p.Stdout()).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(line))
	if err := p.Signal("TERM"); err != nil {
		t.Fatal(err)
	}
	st, _ := p.Wait()
	if st.Signal != "TERM" || st.ExitCode != 128+15 {
		t.Fatalf("stat after TERM: %+v", st)
	}
	testsupport.Eventually(t, 5*time.Second, func() error {
		if err := syscall.Kill(child, 0); err != syscall.ESRCH {
			return fmt.Errorf("the shell's child %d survived a signal to the group: kill -0: %v", child, err)
		}
		return nil
	})
	if err := p.Signal("NOPE"); err == nil || !strings.Contains(err.Error(), "KILL") {
		t.Fatalf("unknown signal: %v", err)
	}
}

func TestNoZombiesAndScrub(t *testing.T) {
	c, host := twoServers(t)
	a := host.Walk([]string{"short"})
	p, err := a.MakeProc(client.Cmd{Path: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := p.Wait()
	// The server reaped it: the PID is gone, not a zombie.
	testsupport.Eventually(t, 5*time.Second, func() error { return gone(st.PID, "exited") })
	if kind, _ := c.KindAt(context.Background(), a.Path()); kind != "proc" {
		t.Fatalf("without Scrub the element stays; kind %q", kind)
	}
	a.Scrub()
	if kind, _ := c.KindAt(context.Background(), a.Path()); kind != "" {
		t.Fatalf("after Scrub the anchor holds %q", kind)
	}

	// Scrub of a running process kills it.
	b := host.Walk([]string{"long"})
	q, err := b.MakeProc(client.Cmd{Path: "/bin/sleep", Args: []string{"1000"}})
	if err != nil {
		t.Fatal(err)
	}
	pid := q.Peek().PID
	b.Scrub()
	testsupport.Eventually(t, 5*time.Second, func() error { return gone(pid, "was scrubbed") })
}

func TestMakeProcErrors(t *testing.T) {
	c, host := twoServers(t)
	a := host.Walk([]string{"x"})
	if _, err := a.MakeProc(client.Cmd{Path: "/no/such/binary"}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing binary: %v", err)
	}
	if kind, _ := c.KindAt(context.Background(), a.Path()); kind != "" || len(host.View()) != 0 {
		t.Fatalf("a failed mkproc left %q behind", kind)
	}
	if _, err := a.MakeProc(client.Cmd{Path: "/bin/sleep", Args: []string{"1000"}}); err != nil {
		t.Fatal(err)
	}
	defer a.Scrub()
	if _, err := a.MakeProc(client.Cmd{Path: "/bin/true"}); err == nil || !strings.Contains(err.Error(), "holds a proc") {
		t.Fatalf("occupied anchor: %v", err)
	}
}

// TestSeed002Compiles builds seed 002's program, whose only change is the
// import path of this package.
func TestSeed002Compiles(t *testing.T) {
	out, err := exec.Command("go", "build", "-o", os.DevNull, "./testdata/seed002").CombinedOutput()
	if err != nil {
		t.Fatalf("seed 002's program does not compile: %v\n%s", err, out)
	}
}

// gone returns nil once process pid has no /proc entry, and otherwise an
// error saying that the process, which what, still exists.
func gone(pid int, what string) error {
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !os.IsNotExist(err) {
		return fmt.Errorf("process %d %s: it still exists (stat: %v)", pid, what, err)
	}
	return nil
}
