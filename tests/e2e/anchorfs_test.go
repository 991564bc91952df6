package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestAnchorFileSystemFromTheCLI lists processes made with mkproc in
// directories of the anchor file system, on two servers, and kills them by
// directory, as seed 003's 4ls and 4kill do.
func TestAnchorFileSystemFromTheCLI(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{Local: true})
	a, b := "R00000000000000a1", "R00000000000000b2"
	mk := func(srv *testcluster.Proc, worker, cmd string) {
		t.Helper()
		if r := cl.RunVia(srv, cmd, "mkproc", "/"+srv.ID+"/"+worker); r.Code != 0 {
			t.Fatalf("mkproc: %+v", r)
		}
	}
	mk(cl.Servers[0], a, `{"Path": "/bin/sleep", "Args": ["600"], "Dirs": ["/jobs/web", "/jobs/all"]}`)
	mk(cl.Servers[1], b, `{"Path": "/bin/sleep", "Args": ["600"], "Dirs": ["/jobs/db", "/jobs/all"]}`)
	want := strings.Join([]string{
		"/jobs", "/jobs/all", "/jobs/all/" + a, "/jobs/all/" + b,
		"/jobs/db", "/jobs/db/" + b, "/jobs/web", "/jobs/web/" + a,
	}, "\n") + "\n"
	for _, via := range cl.Servers {
		if r := cl.RunVia(via, "", "ls", "/jobs/..."); r.Code != 0 || r.Stdout != want {
			t.Fatalf("ls /jobs/... via %s: exit %d\n%s%s\nwant\n%s", via.ID, r.Code, r.Stdout, r.Stderr, want)
		}
	}
	if r := cl.Run("ls", "/jobs"); r.Stdout != "/jobs\n/jobs/all\n/jobs/db\n/jobs/web\n" {
		t.Fatalf("ls /jobs:\n%s", r.Stdout)
	}
	// peek shows the directories; kill by one of them takes every file.
	if r := cl.Run("peek", "/"+cl.Servers[1].ID+"/"+b); !strings.Contains(r.Stdout, `"/jobs/db"`) {
		t.Fatalf("peek:\n%s", r.Stdout)
	}
	if r := cl.Run("kill", "-v", "/jobs/db"); r.Code != 0 || r.Stdout != "/jobs/db/"+b+"\n" {
		t.Fatalf("kill /jobs/db: %+v", r)
	}
	if r := cl.Run("ls", "/jobs/..."); strings.Contains(r.Stdout, b) || strings.Contains(r.Stdout, "/jobs/db") {
		t.Fatalf("after kill /jobs/db:\n%s", r.Stdout)
	}
	// A process that ends by itself leaves its files at once.
	if r := cl.Run("signal", "TERM", "/"+cl.Servers[0].ID+"/"+a); r.Code != 0 {
		t.Fatalf("signal: %+v", r)
	}
	testsupport.Eventually(t, 5*time.Second, func() error {
		if r := cl.Run("ls", "/jobs"); r.Code != 3 {
			return fmt.Errorf("the files of an exited process are still listed: ls /jobs: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		return nil
	})
}
