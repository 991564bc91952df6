package server

import (
	"testing"

	"github.com/circuit-project/circuit/internal/kind"
)

// TestPeekersRegistered: Anchor.Peek can describe every kind of element.
func TestPeekersRegistered(t *testing.T) {
	for _, k := range append(kind.Elements(), kind.Server) {
		if peekers[k] == nil {
			t.Errorf("kind %s has no peeker (peekers in peek.go)", k)
		}
	}
}
