package client

import (
	"testing"

	"github.com/circuit-project/circuit/internal/kind"
)

// TestKindsRegistered: the client knows every kind of element, and the
// exported kinds of the anchor file system are the names of package kind.
func TestKindsRegistered(t *testing.T) {
	for _, k := range append(kind.Elements(), kind.Server) {
		if e, ok := kinds[k]; !ok || e.state == nil || e.handle == nil {
			t.Errorf("kind %s is not registered in the client (kinds in peek.go)", k)
		}
	}
	if KindDir != string(kind.Dir) || KindWorker != string(kind.Worker) {
		t.Errorf("KindDir, KindWorker = %q, %q; want %q, %q", KindDir, KindWorker, kind.Dir, kind.Worker)
	}
}
