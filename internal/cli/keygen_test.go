package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/circuit-project/circuit/internal/security"
)

// TestKeygenMakesItsFilePrivate: "circuit keygen > FILE" leaves FILE mode
// 600 whatever the shell made it, and the key in it loads.
func TestKeygenMakesItsFilePrivate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	code := Main(&Env{Stdout: f, Stderr: &errb}, []string{"keygen"})
	f.Close()
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errb.String())
	}
	if err := security.CheckFileMode(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if _, err := security.Parse(b); err != nil || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("the key written: %q %v", b, err)
	}
}
