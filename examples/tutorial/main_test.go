package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

func TestMain(m *testing.M) { build.Main(m) }

// requirePython skips the test when the hosts' /bin/sh, with the empty
// environment the circuit gives processes, finds no python3; on CI (CI=true)
// that is a failure instead.
func requirePython(t *testing.T) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "command -v python3")
	cmd.Env = []string{}
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := "no python3 in /bin/sh's default PATH, which the example's services need: " + err.Error() + " " + string(out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// runTutorial runs the example with args, within a minute, and returns its
// standard output; it fails the test if the example fails.
func runTutorial(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tutorial %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	t.Logf("tutorial %s:\n%s", strings.Join(args, " "), stdout.String())
	return stdout.String()
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// get fetches url and returns its status and body, or the error.
func get(url string) (int, string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitGet polls url until it answers status want with a body that
// satisfies ok, or fails the test after 20 s.
func waitGet(t *testing.T, url string, want int, ok func(body string) bool, what string) {
	t.Helper()
	testsupport.Eventually(t, 20*time.Second, func() error {
		code, body, err := get(url)
		if err == nil && code == want && ok(body) {
			return nil
		}
		return fmt.Errorf("GET %s has not given %s; last answer: %d %q %v", url, what, code, body, err)
	})
}

// rows parses nameValue into a map of name to value.
func rows(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(nameValue), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("row %q has no value", line)
		}
		out[name] = value
	}
	if len(out) == 0 {
		t.Fatal("the database has no rows")
	}
	return out
}

// tutorialAnchors lists the anchors of the tutorial's processes, by their
// last path component.
func tutorialAnchors(t *testing.T, cl *testcluster.Cluster) map[string][]string {
	t.Helper()
	r := cl.Run("ls", "-l", "/...")
	if r.Code != 0 {
		t.Fatalf("circuit ls -l /...: exit %d\n%s", r.Code, r.Stderr)
	}
	out := map[string][]string{}
	for _, line := range testcluster.Lines(r.Stdout) {
		f := strings.Fields(line)
		if len(f) != 2 || f[0] != "proc" || !strings.Contains(f[1], "/tutorial/") {
			continue
		}
		name := f[1][strings.LastIndexByte(f[1], '/')+1:]
		out[name] = append(out[name], f[1])
	}
	return out
}

func TestTutorial(t *testing.T) {
	requirePython(t)
	bin := build.Program(t, ".")
	cl := testcluster.Start(t, 2, testcluster.Options{})
	addr := cl.Servers[0].URL

	// Cleanups run last-in first-out: this one runs before the cluster's
	// servers are killed, so no service outlives the test.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-addr", addr, "-stop").CombinedOutput()
		if err != nil {
			t.Errorf("tutorial -stop: %v\n%s", err, out)
		}
		for _, paths := range tutorialAnchors(t, cl) {
			for _, p := range paths {
				t.Errorf("%s still there after -stop", p)
				cl.Run("scrub", p)
			}
		}
	})

	out := runTutorial(t, bin, "-addr", addr)
	dbRE := regexp.MustCompile(`(?m)^Started database on private address: (\S+) (\d+)$`)
	webRE := regexp.MustCompile(`(?m)^Started web front end on public address: (\S+) (\d+)$`)
	db, web := dbRE.FindStringSubmatch(out), webRE.FindStringSubmatch(out)
	if db == nil || web == nil || len(testcluster.Lines(out)) != 2 {
		t.Fatalf("the output is not the two Started lines:\n%s", out)
	}
	if db[1] != "127.0.0.1" || web[1] != "127.0.0.1" {
		t.Errorf("addresses %s and %s, want 127.0.0.1 for both", db[1], web[1])
	}
	dbURL := "http://" + net.JoinHostPort(db[1], db[2])
	webURL := "http://" + net.JoinHostPort(web[1], web[2])

	// Each service runs on a server of its own, at its anchor.
	anchors := tutorialAnchors(t, cl)
	if len(anchors["database"]) != 1 || len(anchors["frontend"]) != 1 {
		t.Fatalf("want one database and one front end, got %v", anchors)
	}
	dbAnchor, webAnchor := anchors["database"][0], anchors["frontend"][0]
	dbServer, webServer := strings.Split(dbAnchor, "/")[1], strings.Split(webAnchor, "/")[1]
	if dbServer == webServer {
		t.Errorf("database %s and front end %s run on the same server", dbAnchor, webAnchor)
	}
	ids := map[string]bool{}
	for _, s := range cl.Servers {
		ids[s.ID] = true
	}
	if !ids[dbServer] || !ids[webServer] {
		t.Errorf("services at %s and %s, not on the cluster's servers %v", dbAnchor, webAnchor, ids)
	}

	// Each service runs in a directory of its own on its host (here, this
	// machine); the database's is removed by the test, as the database is
	// scrubbed below without -stop.
	c := cl.Client(cl.Servers[0])
	dirOf := func(path string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := c.ProcAt(path).Peek(ctx)
		if err != nil {
			t.Fatalf("peek %s: %v", path, err)
		}
		if !strings.HasPrefix(st.Cmd.Dir, dirPrefix) {
			t.Fatalf("%s runs in %q, not below %s", path, st.Cmd.Dir, dirPrefix)
		}
		if _, err := os.Stat(st.Cmd.Dir); err != nil {
			t.Fatal(err)
		}
		return st.Cmd.Dir
	}
	dbDir, webDir := dirOf(dbAnchor), dirOf(webAnchor)
	t.Cleanup(func() { os.RemoveAll(dbDir) })

	// The front end answers every row with the value the database holds.
	for name, value := range rows(t) {
		code, body, err := get(dbURL + "/NameValue/" + name)
		if err != nil || code != http.StatusOK || body != value+"\n" {
			t.Errorf("database row %s: %d %q %v, want %q", name, code, body, err, value+"\n")
		}
		waitGet(t, webURL+"/"+name, http.StatusOK, func(body string) bool { return body == value+"\n" }, "the value "+value)
	}
	if code, body, err := get(webURL + "/no-such-row"); err != nil || code != http.StatusNotFound {
		t.Errorf("front end, missing row: %d %q %v, want 404", code, body, err)
	}

	// Without the database, the front end cannot answer: it is pointed at
	// that database.
	if r := cl.Run("scrub", dbAnchor); r.Code != 0 {
		t.Fatalf("circuit scrub %s: exit %d\n%s", dbAnchor, r.Code, r.Stderr)
	}
	waitGet(t, webURL+"/greeting", http.StatusBadGateway, func(body string) bool {
		return strings.HasPrefix(body, "database unreachable")
	}, "502 database unreachable")

	// -stop stops the front end, the one service left.
	out = runTutorial(t, bin, "-addr", addr, "-stop")
	if strings.TrimSpace(out) != "Stopped "+webAnchor {
		t.Errorf("tutorial -stop printed %q, want %q", out, "Stopped "+webAnchor)
	}
	testsupport.Eventually(t, 20*time.Second, func() error {
		if _, _, err := get(webURL + "/greeting"); err == nil {
			return errors.New("the front end still answers after -stop")
		}
		return nil
	})
	if _, err := os.Stat(webDir); !os.IsNotExist(err) {
		t.Errorf("the front end's directory %s is still there after -stop: %v", webDir, err)
	}
	if left := tutorialAnchors(t, cl); len(left) != 0 {
		t.Errorf("anchors left after -stop: %v", left)
	}
	if out = runTutorial(t, bin, "-addr", addr, "-stop"); strings.TrimSpace(out) != "Nothing to stop" {
		t.Errorf("second -stop printed %q, want %q", out, "Nothing to stop")
	}
}
