package server

import (
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/ident"
)

// Discovery announcements start joins, and without a key anyone on the
// segment can announce: the joins they start are bounded in number at
// once, repeated for one ID at most every rejoinAfter, and remembered in a
// table of bounded size.
const (
	maxJoining    = 8
	rejoinAfter   = 5 * time.Second
	maxRemembered = 256
)

// joinTable decides which announced servers to join.
type joinTable struct {
	mu      sync.Mutex
	joining int
	last    map[ident.ID]joinEntry
}

type joinEntry struct {
	at      time.Time // when the last join began
	running bool
}

// admit reports whether to start joining id now; when it does, done must
// be called once the join is over.
func (t *joinTable) admit(id ident.ID, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last = map[ident.ID]joinEntry{}
	}
	e, known := t.last[id]
	switch {
	case e.running, t.joining >= maxJoining:
		return false
	case known && now.Sub(e.at) < rejoinAfter:
		return false
	}
	if !known && len(t.last) >= maxRemembered && !t.evict() {
		return false // every entry is a join still running
	}
	t.last[id] = joinEntry{at: now, running: true}
	t.joining++
	return true
}

// evict forgets the oldest entry whose join is over.
func (t *joinTable) evict() bool {
	var oldest ident.ID
	var at time.Time
	found := false
	for id, e := range t.last {
		if !e.running && (!found || e.at.Before(at)) {
			oldest, at, found = id, e.at, true
		}
	}
	if found {
		delete(t.last, oldest)
	}
	return found
}

// done records that the join of id admitted earlier is over.
func (t *joinTable) done(id ident.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.last[id]; ok && e.running {
		e.running = false
		t.last[id] = e
		t.joining--
	}
}
