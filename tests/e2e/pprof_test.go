package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestPprof: circuit pprof of a server, through a relay, writes profiles
// that go tool pprof reads; bad requests exit 2 and name what was wrong.
func TestPprof(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{Key: true})
	far := "/" + cl.Servers[1].ID
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string // in go tool pprof -top's output
	}{
		{[]string{"-cpu", "1s"}, "Type: cpu"},
		{[]string{"-heap"}, "Type: inuse_space"},
		{[]string{"-goroutine"}, "Type: goroutine"},
		{[]string{"-mutex", "-for", "200ms"}, "Type: delay"},
	} {
		r := cl.Run(append(append([]string{"pprof", "-d", cl.Servers[0].URL}, tc.args...), far)...)
		if r.Code != 0 || r.Stdout == "" {
			t.Fatalf("pprof %q: exit %d, %d bytes, %s", tc.args, r.Code, len(r.Stdout), r.Stderr)
		}
		f := filepath.Join(dir, "p")
		if err := os.WriteFile(f, []byte(r.Stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("go", "tool", "pprof", "-top", f).CombinedOutput()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("go tool pprof of pprof %q: %v\n%s", tc.args, err, out)
		}
	}
	if r := cl.Run("pprof", "-trace", "300ms", far); r.Code != 0 || !strings.HasPrefix(r.Stdout, "go 1.") {
		t.Errorf("pprof -trace: exit %d, %q", r.Code, r.Stdout[:min(len(r.Stdout), 20)])
	}
	for _, args := range [][]string{{"-cpu", "3m", far}, {"-heap", "-goroutine", far}, {far}, {"-cpu", "1s"}, {"-heap", "-for", "1s", far}} {
		if r := cl.Run(append([]string{"pprof"}, args...)...); r.Code != 2 {
			t.Errorf("pprof %q: %+v; want exit 2", args, r)
		}
	}
	if r := cl.Run("pprof", "-heap", far+"/nothing"); r.Code != 3 {
		t.Errorf("pprof of no element: %+v; want exit 3", r)
	}
}
