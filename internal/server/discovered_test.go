package server

import (
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/ident"
)

func TestJoinTable(t *testing.T) {
	var tab joinTable
	t0 := time.Unix(1000, 0)
	if !tab.admit(1, t0) {
		t.Fatal("a first announcement was not joined")
	}
	if tab.admit(1, t0.Add(10*time.Second)) {
		t.Fatal("a second join of a server whose join is running")
	}
	tab.done(1)
	if tab.admit(1, t0.Add(time.Second)) {
		t.Fatal("a rejoin within rejoinAfter")
	}
	if !tab.admit(1, t0.Add(rejoinAfter)) {
		t.Fatal("no rejoin after rejoinAfter")
	}
	tab.done(1)
	// A flood of announcements, each of another ID: at most maxJoining
	// at once.
	admitted := 0
	for id := ident.ID(100); id < 100+1000; id++ {
		if tab.admit(id, t0) {
			admitted++
		}
	}
	if admitted != maxJoining {
		t.Fatalf("%d joins at once, want %d", admitted, maxJoining)
	}
	// As they end, more; the table stays bounded.
	for round := range 100 {
		for id := range tab.last {
			tab.done(id)
		}
		for i := range 50 {
			tab.admit(ident.ID(5000+round*50+i), t0)
		}
		if len(tab.last) > maxRemembered || tab.joining > maxJoining {
			t.Fatalf("round %d: %d remembered, %d joining", round, len(tab.last), tab.joining)
		}
	}
}
