package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestProcessesInheritNoStrayDescriptors starts a server that inherits two
// open files without close-on-exec, as from a careless parent: a process
// it starts sees only its standard streams.
func TestProcessesInheritNoStrayDescriptors(t *testing.T) {
	cl := testcluster.Start(t, 0, testcluster.Options{})
	var files []*os.File
	for _, name := range []string{"secret-a", "secret-b"} {
		f, err := os.Create(filepath.Join(t.TempDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	srv := cl.SpawnFiles(nil, files, "start", "-a", "127.0.0.1:0", "-timing", "local")
	cl.Servers = append(cl.Servers, srv)
	// ls lists the descriptors of the shell that the server started
	// (its parent, $$), not its own; then where they lead.
	r := cl.RunEnv(nil, "", "run", "-d", srv.URL, "--", "/bin/sh", "-c", `ls /proc/$$/fd; echo links; ls -l /proc/$$/fd`)
	if r.Code != 0 {
		t.Fatalf("run: %+v", r)
	}
	var fds []string
	for _, l := range testcluster.Lines(r.Stdout) {
		l = strings.TrimSpace(l[strings.Index(l, ":")+1:]) // the server's prefix
		if l == "links" {
			break
		}
		fds = append(fds, l)
	}
	if strings.Join(fds, " ") != "0 1 2" {
		t.Errorf("the process holds descriptors %v, want only 0 1 2: %q", fds, r.Stdout)
	}
	if strings.Contains(r.Stdout, "secret-") {
		t.Errorf("the process holds the server's inherited files: %q", r.Stdout)
	}
}
