package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestRunStreams runs copies on two servers (one reached directly, one the
// dial-in server) through client.Run and checks what a run stream carries:
// output split into whole lines, the last line without a newline, a line
// longer than a frame's read buffer, stdin to every copy, stdin the copy
// never reads, exit codes, and a timeout that kills the copy.
func TestRunStreams(t *testing.T) {
	servers := testcluster.StartInProcess(t, 2, nil)
	ctx := context.Background()
	c, err := client.Connect(ctx, client.Options{Addr: servers[0].URL().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	long := strings.Repeat("y", 200<<10)
	bigIn := bytes.Repeat([]byte("z"), 1<<20)
	manyArgs := make([]string, 300) // 300 KiB: more than a stream header holds
	for i := range manyArgs {
		manyArgs[i] = strings.Repeat("a", 1<<10)
	}
	cases := []struct {
		name    string
		cmd     client.Cmd
		opt     client.RunOptions
		code    int
		stdout  string
		lines   []string // OnLine's stdout lines, when checked
		stderr  string
		timeout bool
	}{
		{name: "lines", cmd: sh(`printf 'one\ntwo\nthree'; echo err >&2; exit 4`), code: 4,
			stdout: "one\ntwo\nthree", lines: []string{"one\n", "two\n", "three"}, stderr: "err\n"},
		{name: "long line", cmd: sh(`head -c 204800 /dev/zero | tr '\0' y; echo`), stdout: long + "\n"},
		{name: "long command", cmd: sh(`echo $#`, manyArgs...), stdout: "299\n"},
		{name: "stdin", cmd: sh(`cat; echo done`), opt: client.RunOptions{Stdin: []byte("in\n")}, stdout: "in\ndone\n"},
		{name: "stdin not read", cmd: sh(`echo ignored`), opt: client.RunOptions{Stdin: bigIn}, stdout: "ignored\n"},
		{name: "no stdin", cmd: sh(`cat; echo eof`), stdout: "eof\n"},
		{name: "timeout", cmd: sh(`echo started; exec sleep 30`), opt: client.RunOptions{Timeout: 500 * time.Millisecond}, stdout: "started\n", timeout: true},
		{name: "descendant holds the output", cmd: sh(`sleep 601 & echo bg`), opt: client.RunOptions{Timeout: 500 * time.Millisecond}, stdout: "bg\n", timeout: true},
		{name: "timeout with stdin unread", cmd: sh(`exec sleep 30`), opt: client.RunOptions{Stdin: bigIn, Timeout: 500 * time.Millisecond}, timeout: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			lines := map[string][]string{}
			tc.opt.OnLine = func(server string, s client.Stream, line []byte) {
				if s == client.Stdout {
					mu.Lock()
					lines[server] = append(lines[server], string(line))
					mu.Unlock()
				}
			}
			start := time.Now()
			results, err := c.Run(ctx, tc.cmd, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(results) != 2 {
				t.Fatalf("%d results, want 2", len(results))
			}
			for _, r := range results {
				if tc.timeout {
					if !errors.Is(r.Err, client.ErrTimeout) || time.Since(start) > 10*time.Second {
						t.Fatalf("%s: %v after %v, want a timeout", r.Server, r.Err, time.Since(start))
					}
				} else if r.Err != nil || r.ExitCode != tc.code {
					t.Fatalf("%s: exit %d, %v; want exit %d", r.Server, r.ExitCode, r.Err, tc.code)
				}
				if string(r.Stdout) != tc.stdout || (!tc.timeout && string(r.Stderr) != tc.stderr) {
					t.Fatalf("%s: stdout %.80q, stderr %.80q", r.Server, r.Stdout, r.Stderr)
				}
				if strings.Join(lines[r.Server], "") != tc.stdout {
					t.Fatalf("%s: OnLine's stdout adds up to %.80q", r.Server, strings.Join(lines[r.Server], ""))
				}
				if tc.lines != nil && strings.Join(lines[r.Server], "|") != strings.Join(tc.lines, "|") {
					t.Fatalf("%s: lines %q, want %q", r.Server, lines[r.Server], tc.lines)
				}
			}
		})
	}
	// Every copy is gone: those that exited, and those killed, with the
	// descendants that outlived them.
	testsupport.Eventually(t, 10*time.Second, func() error {
		if running("sleep\x00601") {
			return errors.New("a copy's descendant outlived the timeout")
		}
		return nil
	})
	testsupport.Eventually(t, 10*time.Second, func() error {
		for _, s := range servers {
			entries, err := c.List(ctx, "/"+s.ID().String()+"/"+client.RunAnchor+"/...")
			if err != nil {
				return err
			}
			if len(entries) > 0 {
				return fmt.Errorf("run left elements behind on %s: %v", s.ID(), entries)
			}
		}
		return nil
	})
}

func sh(script string, args ...string) client.Cmd {
	return client.Cmd{Path: "/bin/sh", Args: append([]string{"-c", script}, args...)}
}

// running reports whether a process whose command line contains cmdline
// (arguments separated by NULs) is running.
func running(cmdline string) bool {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), cmdline) {
			return true
		}
	}
	return false
}
