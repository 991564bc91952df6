package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// labelled starts three servers: db in zone a, web in zone b, and one
// without labels.
func labelled(t *testing.T) (cl *testcluster.Cluster, db, web, bare *testcluster.Proc) {
	cl = testcluster.Start(t, 0, testcluster.Options{Local: true})
	db = cl.StartServer("-label", "role=db", "-label", "zone=a")
	web = cl.StartServer("-label", "role=web", "-label", "zone=b", "-j", db.URL)
	bare = cl.StartServer("-j", db.URL)
	cl.WaitMembers(3)
	return cl, db, web, bare
}

func TestLabels(t *testing.T) {
	cl, db, web, bare := labelled(t)
	// ls -l / ends each server's line with its labels, at any server.
	r := cl.RunVia(bare, "", "ls", "-l", "/")
	want := map[string]string{db.ID: "role=db,zone=a", web.ID: "role=web,zone=b", bare.ID: ""}
	for _, line := range testcluster.Lines(r.Stdout) {
		f := strings.Fields(line)
		id := strings.TrimPrefix(f[1], "/")
		got := ""
		if len(f) > 2 {
			got = f[2]
		}
		if l, ok := want[id]; !ok || l != got {
			t.Errorf("ls -l / line %q: want labels %q", line, l)
		}
	}
	// peek shows them.
	r = cl.Run("peek", "/"+web.ID)
	var info struct{ Labels map[string]string }
	if err := json.Unmarshal([]byte(r.Stdout), &info); err != nil || info.Labels["role"] != "web" || info.Labels["zone"] != "b" {
		t.Fatalf("peek /%s: %v\n%s", web.ID, err, r.Stdout)
	}
	// The client library: on the members, on the server's anchor, and
	// through selectors.
	c := cl.Client(bare)
	got, err := c.Select(context.Background(), "zone in (a,b),role!=web")
	if err != nil || len(got) != 1 || got[0].ID != db.ID || got[0].Labels["zone"] != "a" {
		t.Fatalf("Select: %v %+v", err, got)
	}
	srv, ok := c.Walk([]string{web.ID}).Get().(*client.Server)
	if !ok || srv.Peek().Labels["role"] != "web" {
		t.Fatalf("the server anchor's Peek lacks the labels: %+v", srv)
	}
	// Bad labels and selectors are refused with a usage error.
	if r := cl.RunEnv(nil, "", "start", "-a", "127.0.0.1:0", "-label", "role"); r.Code != 2 || !strings.Contains(r.Stderr, "key=value") {
		t.Fatalf("start -label role: %+v", r)
	}
	if r := cl.RunEnv(nil, "", "start", "-a", "127.0.0.1:0", "-label", "dc=x"); r.Code != 2 || !strings.Contains(r.Stderr, "-dc x") {
		t.Fatalf("start -label dc=x: %+v", r)
	}
	if r := cl.RunEnv(nil, "", "start", "-a", "127.0.0.1:0", "-dc", "a b"); r.Code != 2 || !strings.Contains(r.Stderr, "-dc") {
		t.Fatalf("start -dc 'a b': %+v", r)
	}
	if r := cl.Run("run", "-l", "zone in (a", "--", "true"); r.Code != 2 || !strings.Contains(r.Stderr, "selector") {
		t.Fatalf("run with a bad selector: %+v", r)
	}
}

func TestRun(t *testing.T) {
	cl, db, web, bare := labelled(t)
	all := []string{db.ID, web.ID, bare.ID}

	// Every server, each line prefixed, the largest exit code.
	r := cl.Run("run", "--", "sh", "-c", `echo "one $0"; echo two; echo oops >&2`, "x")
	if r.Code != 0 {
		t.Fatalf("run: %+v", r)
	}
	lines := testcluster.Lines(r.Stdout)
	if len(lines) != 6 {
		t.Fatalf("want 6 lines of stdout, got %q", r.Stdout)
	}
	for _, id := range all {
		first := slices.Index(lines, id+": one x")
		second := slices.Index(lines, id+": two")
		if first < 0 || second < first {
			t.Errorf("server %s: lines missing or out of order in %q", id, r.Stdout)
		}
		if !strings.Contains(r.Stderr, id+": oops\n") {
			t.Errorf("server %s: stderr line missing in %q", id, r.Stderr)
		}
	}

	// A selector, the exit code, stdin to every copy.
	r = cl.RunVia(bare, "hello\n", "run", "-l", "role", "--", "sh", "-c", `cat; [ "$(uname -n)" ] && exit 7`)
	if r.Code != 7 || len(testcluster.Lines(r.Stdout)) != 2 || !strings.Contains(r.Stdout, db.ID+": hello\n") || !strings.Contains(r.Stdout, web.ID+": hello\n") {
		t.Fatalf("run -l role with stdin: %+v", r)
	}

	// Without stdin (-n), a copy reads EOF at once.
	if r := cl.Run("run", "-n", "-timeout", "20s", "--", "cat"); r.Code != 0 || r.Stdout != "" {
		t.Fatalf("run -n -- cat: %+v", r)
	}

	// -b gathers identical output.
	r = cl.Run("run", "-b", "--", "echo", "same")
	want := "---------------\n" + strings.Join(sorted(all), ",") + " (3)\n---------------\nsame\n"
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("run -b: got %q, want %q", r.Stdout, want)
	}

	// A timeout is named and counts as 255; the copy is killed.
	start := time.Now()
	r = cl.Run("run", "-l", "role=web", "-timeout", "300ms", "--", "sleep", "30")
	if r.Code != 255 || !strings.Contains(r.Stderr, web.ID+": timed out") || time.Since(start) > 10*time.Second {
		t.Fatalf("run -timeout: %+v after %v", r, time.Since(start))
	}

	// -fanout 1 runs one at a time: the copies' intervals do not overlap.
	r = cl.Run("run", "-fanout", "1", "--", "sh", "-c", `date +%s%N; sleep 0.2; date +%s%N`)
	if r.Code != 0 || len(testcluster.Lines(r.Stdout)) != 6 {
		t.Fatalf("run -fanout 1: %+v", r)
	}
	type span struct{ from, to string }
	spans := map[string]*span{}
	for _, l := range testcluster.Lines(r.Stdout) {
		id, ts, _ := strings.Cut(l, ": ")
		if spans[id] == nil {
			spans[id] = &span{from: ts}
		} else {
			spans[id].to = ts
		}
	}
	var list []span
	for _, s := range spans {
		list = append(list, *s)
	}
	slices.SortFunc(list, func(a, b span) int { return strings.Compare(a.from, b.from) })
	for i := 1; i < len(list); i++ {
		if list[i].from < list[i-1].to {
			t.Fatalf("-fanout 1: runs overlap: %+v", list)
		}
	}

	// Nothing is left behind: the servers remove copies that exited.
	testsupport.Eventually(t, 10*time.Second, func() error {
		r := cl.Run("ls", "/...")
		if r.Code != 0 || strings.Contains(r.Stdout, client.RunAnchor+"/") {
			return fmt.Errorf("run left elements behind: ls /...: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		return nil
	})
}

// TestRunServerVanishes: a server killed during a run is named, and
// counts as a failure, while the others finish.
func TestRunServerVanishes(t *testing.T) {
	cl, db, web, bare := labelled(t)
	done := make(chan testcluster.Result, 1)
	go func() { done <- cl.RunVia(db, "", "run", "--", "sh", "-c", "echo started; sleep 2; echo finished") }()
	c := cl.Client(db)
	// Wait until the copy on web runs, then kill web.
	testsupport.Eventually(t, 10*time.Second, func() error {
		entries, err := c.List(context.Background(), "/"+web.ID+"/"+client.RunAnchor+"/...")
		if err == nil && len(entries) == 0 {
			err = fmt.Errorf("the copy on %s has not started", web.ID)
		}
		return err
	})
	web.Kill()
	r := <-done
	if r.Code != 255 || !strings.Contains(r.Stderr, web.ID+":") {
		t.Fatalf("run with a server killed: %+v", r)
	}
	for _, p := range []*testcluster.Proc{db, bare} {
		if !strings.Contains(r.Stdout, p.ID+": finished") {
			t.Errorf("server %s did not finish: %q", p.ID, r.Stdout)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestCp copies a tree to a server and back through the CLI, checks modes,
// times and content, the tar forms, -fs-root, and that a copy cut short
// leaves nothing under the final name.
func TestCp(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{Local: true})
	fsRoot := t.TempDir()
	jail := cl.StartServer("-j", cl.Servers[0].URL, "-fs-root", fsRoot)
	cl.WaitMembers(2)
	open := cl.Servers[0]

	src := filepath.Join(t.TempDir(), "site")
	mustOK(t, os.MkdirAll(filepath.Join(src, "css"), 0o755))
	mustOK(t, os.WriteFile(filepath.Join(src, "index.html"), []byte("<h1>hi</h1>\n"), 0o640))
	mustOK(t, os.WriteFile(filepath.Join(src, "css", "big.css"), bytes.Repeat([]byte("a{}"), 1<<20), 0o644))
	when := time.Date(2021, 5, 6, 7, 8, 9, 123456789, time.UTC)
	mustOK(t, os.Chtimes(filepath.Join(src, "index.html"), when, when))

	remote := filepath.Join(t.TempDir(), "www")
	if r := cl.Run("cp", src, "/"+open.ID+":"+remote); r.Code != 0 {
		t.Fatalf("cp to: %+v", r)
	}
	back := filepath.Join(t.TempDir(), "back")
	if r := cl.Run("cp", "/"+open.ID+":"+remote, back); r.Code != 0 {
		t.Fatalf("cp from: %+v", r)
	}
	for _, f := range []string{"index.html", "css/big.css"} {
		a, _ := os.ReadFile(filepath.Join(src, f))
		b, err := os.ReadFile(filepath.Join(back, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs after the round trip: %v", f, err)
		}
	}
	fi, err := os.Stat(filepath.Join(back, "index.html"))
	if err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(when) {
		t.Fatalf("index.html: %v %v", fi.Mode(), fi.ModTime())
	}

	// Tar on standard input and output.
	r := cl.Run("cp", "/"+open.ID+":"+remote+"/index.html", "-")
	if r.Code != 0 || !strings.Contains(r.Stdout, "<h1>hi</h1>") {
		t.Fatalf("cp to -: %+v", r)
	}
	into := t.TempDir()
	if r := cl.RunVia(open, r.Stdout, "cp", "-", "/"+open.ID+":"+into); r.Code != 0 {
		t.Fatalf("cp from -: %+v", r)
	}
	if b, err := os.ReadFile(filepath.Join(into, "index.html")); err != nil || string(b) != "<h1>hi</h1>\n" {
		t.Fatalf("cp from -: %q %v", b, err)
	}

	// -fs-root: paths are inside it, and nothing leaves it.
	if r := cl.Run("cp", src, "/"+jail.ID+":/site"); r.Code != 0 {
		t.Fatalf("cp into -fs-root: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(fsRoot, "site", "index.html")); err != nil {
		t.Fatal(err)
	}
	mustOK(t, os.Symlink("/etc", filepath.Join(fsRoot, "etc")))
	for _, p := range []string{"/etc/hostname", "/../../etc/hostname"} {
		if r := cl.Run("cp", "/"+jail.ID+":"+p, filepath.Join(t.TempDir(), "x")); r.Code == 0 {
			t.Fatalf("cp of %s escaped -fs-root: %+v", p, r)
		}
	}
	if r := cl.Run("cp", src, "/"+jail.ID+":/etc/circuit-test"); r.Code == 0 || !strings.Contains(r.Stderr, "fs-root") {
		t.Fatalf("cp through a link out of -fs-root: %+v", r)
	}

	// A copy cut short: the stream stops mid-file and the client goes.
	c := cl.Client(open)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	dest := t.TempDir()
	go func() { done <- c.CopyTarTo(ctx, pr, open.ID, dest) }()
	tw := tar.NewWriter(pw)
	tw.WriteHeader(&tar.Header{Name: "partial.bin", Mode: 0o644, Size: 10 << 20, Typeflag: tar.TypeReg})
	tw.Write(make([]byte, 1<<20))
	cancel()
	pw.CloseWithError(errors.New("stopped"))
	if err := <-done; err == nil {
		t.Fatal("a copy cut short succeeded")
	}
	testsupport.Eventually(t, 5*time.Second, func() error {
		entries, err := os.ReadDir(dest)
		if err == nil && len(entries) != 0 {
			err = fmt.Errorf("%d files left after a copy cut short, first %s", len(entries), entries[0].Name())
		}
		return err
	})
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestScrubbedOutputEnds: a process made with Scrub that exits with no
// output is removed at once; opening its stdout afterwards, by its handle,
// reads the end, not "no element".
func TestScrubbedOutputEnds(t *testing.T) {
	cl := testcluster.Start(t, 1, testcluster.Options{Local: true})
	s := cl.Servers[0]
	c := cl.Client(s)
	ctx := context.Background()
	path := "/" + s.ID + "/quiet"
	h, err := c.MakeProcAt(ctx, path, client.Cmd{Path: "/bin/true", Scrub: true, NoStdin: true})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := h.Wait(ctx); err != nil || st.ExitCode != 0 {
		t.Fatalf("wait: %+v %v", st, err)
	}
	testsupport.Eventually(t, 10*time.Second, func() error {
		kind, err := c.KindAt(ctx, path)
		if err == nil && kind != "" {
			err = fmt.Errorf("the scrubbed process stayed at %s: kind %q", path, kind)
		}
		return err
	})
	for _, name := range []string{"stdout", "stderr"} {
		conn, err := h.OpenStream(ctx, name)
		if err != nil {
			t.Fatalf("%s after the scrub: %v", name, err)
		}
		b, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || len(b) != 0 {
			t.Fatalf("%s after the scrub: %q %v", name, b, err)
		}
	}
	// Another process's serial does not reach it.
	if _, err := c.ProcAtSerial(path, h.Serial()+1000).OpenStream(ctx, "stdout"); err == nil {
		t.Fatal("a wrong serial opened the stream")
	}
}
