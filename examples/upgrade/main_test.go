package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

func TestMain(m *testing.M) { build.Main(m) }

// stamped is a line of ask's output with the time it was read.
type stamped struct {
	at   time.Time
	text string
}

// TestUpgradeWithoutInterruption starts the service (build v1) on three
// servers, puts a load on it, respawns it onto build v2 with the circuit
// command, and checks that no request failed, that every answer after the
// respawn came from v2, that peek shows the new build, and that the
// graveyard says who replaced whom.
func TestUpgradeWithoutInterruption(t *testing.T) {
	v1 := build.ProgramWith(t, ".", "-X main.version=v1")
	v2 := build.ProgramWith(t, ".", "-X main.version=v2")
	cl := testcluster.Start(t, 3, testcluster.Options{Local: true, Key: true})
	cl.WaitMembers(3)
	url := cl.Servers[0].URL
	if r := cl.RunProgram(v1, "-d", url, "start"); r.Code != 0 || strings.Count(r.Stdout, ", build v1\n") != workers {
		t.Fatalf("start: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ask := exec.CommandContext(ctx, v1, "-d", url, "ask", "-c", "4")
	ask.Env = append(os.Environ(), "CIRCUIT_HMAC="+cl.KeyFile)
	var stderr testcluster.SyncBuffer
	ask.Stderr = &stderr
	out, err := ask.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ask.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ask.Process.Kill(); ask.Wait() })
	// Read at once, so that a line's stamp is when ask printed it.
	lines := make(chan stamped, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- stamped{time.Now(), sc.Text()}
		}
	}()
	next := func() stamped {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("ask ended early; its stderr:\n%s", stderr.String())
			}
			return l
		case <-time.After(30 * time.Second):
			t.Fatalf("ask printed nothing for 30 s; its stderr:\n%s", stderr.String())
		}
		return stamped{}
	}
	for i := 0; ; i++ {
		if l := next(); strings.Contains(l.text, "(v1 ") {
			break
		}
		if i == 30 {
			t.Fatal("ask got no answer from v1")
		}
	}

	start := time.Now()
	r := cl.Run("respawn", "-binary", v2, "-grace", "10s", "/upgrade/...")
	done := time.Now()
	if r.Code != 0 || strings.Count(r.Stdout, " replaced by ") != workers {
		t.Fatalf("respawn: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("FIGURE respawn of %d workers under load took %v", workers, done.Sub(start).Round(time.Millisecond))

	// A line covers the second before it: those printed a second after
	// the respawn returned hold v2's answers only.
	after := 0
	for after < 2 {
		l := next()
		if strings.Contains(l.text, "failed ") && !strings.Contains(l.text, "failed 0") {
			t.Errorf("ask: %s", l.text)
		}
		if l.at.Before(done.Add(1100 * time.Millisecond)) {
			continue
		}
		if strings.Contains(l.text, "v1 ") || !strings.Contains(l.text, "(v2 ") {
			t.Errorf("after the respawn, ask says %q; want answers from v2 only", l.text)
		}
		after++
	}
	ask.Process.Signal(syscall.SIGTERM)
	var total string
	for l := range lines {
		total = l.text
	}
	if err := ask.Wait(); err != nil || !strings.HasPrefix(total, "total: ") || !strings.HasSuffix(total, "failed 0") || !strings.Contains(total, "v1 ") || !strings.Contains(total, "v2 ") {
		t.Fatalf("ask: %v, %q; stderr:\n%s", err, total, stderr.String())
	}
	t.Logf("ask %s", total)

	// Peek shows the new build; the graveyard, who replaced whom.
	r = cl.Run("ls", "-l", "/upgrade/service")
	var files []string
	for _, l := range testcluster.Lines(r.Stdout) {
		if strings.HasPrefix(l, "worker ") {
			files = append(files, l)
		}
	}
	if len(files) != workers {
		t.Fatalf("after the respawn: %q", r.Stdout)
	}
	anchor := files[0][strings.LastIndex(files[0], " ")+1:]
	var st struct{ Binary, Build string }
	if r := cl.Run("peek", anchor); r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &st) != nil || len(st.Binary) != 64 || !strings.Contains(st.Build, "-X main.version=v2") {
		t.Errorf("peek %s: %+v\n%s%s", anchor, st, r.Stdout, r.Stderr)
	}
	testsupport.Eventually(t, 10*time.Second, func() error {
		r := cl.Run("graveyard", "/upgrade/service")
		if n := strings.Count(r.Stdout, "replaced by R"); n != workers {
			return fmt.Errorf("the graveyard:\n%s%s", r.Stdout, r.Stderr)
		}
		return nil
	})
	if r := cl.RunProgram(v1, "-d", url, "stop"); r.Code != 0 {
		t.Fatalf("stop: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}
