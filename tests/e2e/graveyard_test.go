package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestGraveyardCommand: circuit graveyard lists, by directory, the records
// of workers that ended, as text, -json and -tree; a process that is no
// worker leaves none; bad paths exit 2.
func TestGraveyardCommand(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{Local: true})
	far := cl.Servers[1]
	w := "R00000000000000c3"
	// What Spawn starts, by hand: a worker's anchor, environment and
	// directories; its "function" is its first argument.
	cmd := `{"Path": "/bin/sh", "Args": ["-c", "echo last words >&2; exit 3"], "Env": ["CIRCUIT_WORKER=` + w + `"], "Dirs": ["/jobs/batch"], "Scrub": true}`
	if r := cl.RunVia(cl.Servers[0], cmd, "mkproc", "/"+far.ID+"/"+w); r.Code != 0 {
		t.Fatalf("mkproc: %+v", r)
	}
	if r := cl.RunVia(cl.Servers[0], `{"Path": "/bin/true", "Dirs": ["/jobs/batch"], "Scrub": true}`, "mkproc", "/"+far.ID+"/R00000000000000e5"); r.Code != 0 {
		t.Fatalf("mkproc of no worker: %+v", r)
	}
	var rec struct{ ID, Func, Parent, Cause, Stderr, Server string }
	testsupport.Eventually(t, 10*time.Second, func() error {
		r := cl.Run("graveyard", "-json", "/jobs/...")
		lines := testcluster.Lines(r.Stdout)
		if r.Code != 0 || len(lines) != 1 {
			return errors.New("graveyard -json: " + r.Stdout + r.Stderr)
		}
		return json.Unmarshal([]byte(lines[0]), &rec)
	})
	if rec.ID != w || rec.Func != "-c" || rec.Cause != "exit 3" || !strings.Contains(rec.Stderr, "last words") || rec.Server != far.ID || !strings.HasPrefix(rec.Parent, "client anyone at 127.0.0.1:") {
		t.Errorf("the record: %+v", rec)
	}
	if r := cl.Run("graveyard", "/jobs/batch"); r.Code != 0 || !strings.Contains(r.Stdout, "ENDED") || !strings.Contains(r.Stdout, w) || !strings.Contains(r.Stdout, "exit 3") {
		t.Errorf("graveyard /jobs/batch: %+v", r)
	}
	if r := cl.Run("graveyard", "-tree"); r.Code != 0 || !strings.HasPrefix(r.Stdout, w+" -c: exit 3") {
		t.Errorf("graveyard -tree: %+v", r)
	}
	if r := cl.Run("graveyard", "/jobs/other"); r.Code != 0 || strings.Contains(r.Stdout, w) {
		t.Errorf("graveyard of another directory: %+v", r)
	}
	for _, args := range [][]string{{"/jobs/batch/" + w}, {"/a", "/b"}, {"not a path"}} {
		if r := cl.Run(append([]string{"graveyard"}, args...)...); r.Code != 2 {
			t.Errorf("graveyard %q: %+v; want exit 2", args, r)
		}
	}
}

// TestRespawnCommand: circuit respawn replaces a worker by hand (a shell
// that reads its request, says it runs, and waits for SIGTERM) with one
// given the same request and directories; the records say who replaced
// whom; a read credential is refused with exit 5; bad arguments exit 2,
// and a directory without workers 3.
func TestRespawnCommand(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{Local: true, Key: true})
	far := cl.Servers[1]
	old := "R00000000000000d7"
	script := `req=$(cat); echo "$req from $CIRCUIT_WORKER"; printf r >&$CIRCUIT_READY; trap 'exit 0' TERM; while :; do sleep 0.05; done`
	cmd, _ := json.Marshal(map[string]any{
		"Path": "/bin/sh", "Args": []string{"-c", script}, "Env": []string{"CIRCUIT_WORKER=" + old},
		"Dirs": []string{"/svc/a"}, "Stdin": []byte("the request"), "Scrub": true,
	})
	if r := cl.RunVia(cl.Servers[0], string(cmd), "mkproc", "/"+far.ID+"/"+old); r.Code != 0 {
		t.Fatalf("mkproc: %+v", r)
	}
	reader := credFile(t, cl, "-name", "alice", "-role", "read", "-ttl", "1h")
	if r := cl.RunEnv([]string{"CIRCUIT_HMAC=", "CIRCUIT_CRED=" + reader}, "", "respawn", "-d", cl.Servers[0].URL, "/svc/..."); r.Code != 5 || !strings.Contains(r.Stderr, "may not Proc.Respawn") {
		t.Fatalf("respawn with a read credential: %+v", r)
	}
	r := cl.Run("respawn", "-grace", "5s", "/svc/...")
	lines := testcluster.Lines(r.Stdout)
	if r.Code != 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], old+" replaced by R") {
		t.Fatalf("respawn: %+v", r)
	}
	successor := strings.Fields(lines[0])[3]
	if r := cl.Run("ls", "/svc/a"); r.Code != 0 || !strings.Contains(r.Stdout, successor) || strings.Contains(r.Stdout, old) {
		t.Errorf("ls after the respawn: %+v", r)
	}
	testsupport.Eventually(t, 10*time.Second, func() error {
		r := cl.Run("graveyard", "/svc/a")
		if !strings.Contains(r.Stdout, "replaced by "+successor) {
			return errors.New("graveyard: " + r.Stdout + r.Stderr)
		}
		return nil
	})
	for _, args := range [][]string{{}, {"/a", "/b"}, {"-grace", "2m", "/svc/..."}, {"/"}} {
		if r := cl.Run(append([]string{"respawn"}, args...)...); r.Code != 2 {
			t.Errorf("respawn %q: %+v; want exit 2", args, r)
		}
	}
	if r := cl.Run("respawn", "/nothing/..."); r.Code != 3 {
		t.Errorf("respawn of an empty directory: %+v; want exit 3", r)
	}
	if r := cl.Run("kill", "-grace", "5s", "/svc/..."); r.Code != 0 {
		t.Errorf("kill: %+v", r)
	}
	// Ended, its output is whole: it was given the same request.
	if r := cl.Run("stdout", "/"+far.ID+"/"+successor); r.Code != 0 || r.Stdout != "the request from "+successor+"\n" {
		t.Errorf("the successor's stdout: %+v", r)
	}
}
