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
