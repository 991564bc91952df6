// Package revocation owns the cluster's list of revoked credentials.
//
// Every server holds the whole list. An entry names a credential's ID and
// stays until that credential would have expired anyway, so the list only
// holds what could still be used, and is bounded by MaxEntries. A server
// with -var keeps its list in a file there (revoked.json), rewritten whole
// and synced on every change, so a restart keeps it. Servers spread the
// list by merging copies: a new entry goes to every member at once, and the
// whole list rides on membership's state exchanges, which every joining
// server makes (package cluster, Config.Shared), so a server that was down
// or joins later has it within one exchange.
//
// A credential is revoked when its ID or any ID of its chain (the
// credentials it was made under, security.Claims.Chain) is listed.
package revocation

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/safefile"
)

// MaxEntries bounds the list. Past it, the entries that end soonest go
// first.
const MaxEntries = 10000

// maxLife bounds how long an entry is kept: longer than any credential
// lasts (security.MaxCredentialLife).
const maxLife = 367 * 24 * time.Hour

// Entry is one revoked credential.
type Entry struct {
	ID    string    // the credential's ID: 32 hex digits
	Name  string    // its name, when the revoker knew it
	Until time.Time // when the credential expires: the entry is kept until then
	At    time.Time // when it was revoked
	By    string    // who revoked it: "key" or a credential's name and ID
}

// CheckID checks that id has the form of a credential's ID.
func CheckID(id string) error {
	if len(id) != 32 {
		return fmt.Errorf("credential ID %q: want 32 hex digits", id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return fmt.Errorf("credential ID %q: want 32 hex digits", id)
	}
	return nil
}

// List is a server's copy of the revocation list.
type List struct {
	path string // the file, or "" to keep the list in memory only

	mu sync.Mutex
	m  map[string]Entry
	// watch, if set, is told of every entry new to the list.
	watch func(Entry)
}

// Open reads the list kept in dir (the server's -var); dir "" keeps it in
// memory only.
func Open(dir string) (*List, error) {
	l := &List{m: map[string]Entry{}}
	if dir == "" {
		return l, nil
	}
	l.path = filepath.Join(dir, "revoked.json")
	b, err := os.ReadFile(l.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return l, nil
	case err != nil:
		return nil, fmt.Errorf("reading the revocation list: %w", err)
	}
	if _, err := l.merge(b, time.Now()); err != nil {
		return nil, fmt.Errorf("reading the revocation list %s: %w", l.path, err)
	}
	return l, nil
}

// Watch sets the function told of every entry new to the list, whether
// added here or merged from another server.
func (l *List) Watch(f func(Entry)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watch = f
}

// Add revokes a credential. It reports whether the entry is new, and is
// written to the file before it returns.
func (l *List) Add(e Entry) (bool, error) {
	if err := CheckID(e.ID); err != nil {
		return false, err
	}
	n, err := l.merge(News(e), time.Now())
	return n > 0, err
}

// Revoked returns the entry that revokes a credential of the given IDs (its
// own and its chain's: security.Claims.Lineage), if any does.
func (l *List) Revoked(ids []string) (Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if e, ok := l.m[id]; ok {
			return e, true
		}
	}
	return Entry{}, false
}

// All returns the entries in force, newest revocation first.
func (l *List) All() []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	var out []Entry
	for _, e := range l.m {
		if e.Until.After(now) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return b.At.Compare(a.At) })
	return out
}

// Encode is the list in force, as Merge reads it.
func (l *List) Encode() []byte {
	b, _ := json.Marshal(l.All())
	return b
}

// News is the news of one entry, as Merge reads it: small enough for one
// datagram.
func News(e Entry) []byte {
	b, _ := json.Marshal([]Entry{e})
	return b
}

// Merge adds the entries of another copy (Encode's form) and returns how
// many were new.
func (l *List) Merge(b []byte) (int, error) { return l.merge(b, time.Now()) }

func (l *List) merge(b []byte, now time.Time) (int, error) {
	var in []Entry
	if err := json.Unmarshal(b, &in); err != nil {
		return 0, fmt.Errorf("a revocation list: %w", err)
	}
	added, watch, err := l.mergeLocked(in, now)
	if watch != nil { // outside mu: the watcher may look entries up
		for _, e := range added {
			watch(e)
		}
	}
	return len(added), err
}

func (l *List) mergeLocked(in []Entry, now time.Time) ([]Entry, func(Entry), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var added []Entry
	for _, e := range in {
		if CheckID(e.ID) != nil || !e.Until.After(now) {
			continue
		}
		if lim := now.Add(maxLife); e.Until.After(lim) {
			e.Until = lim // no credential lasts longer
		} // no credential lasts longer
		if old, ok := l.m[e.ID]; ok {
			// Copies agree on the ID; keep the longest bound, so that
			// merging in any order ends the same.
			if e.Until.After(old.Until) {
				old.Until = e.Until
				l.m[e.ID] = old
			}
			continue
		}
		l.m[e.ID] = e
		added = append(added, e)
	}
	l.prune(now)
	if len(added) == 0 {
		return nil, nil, nil
	}
	return added, l.watch, l.save()
}

// prune drops the entries of expired credentials and, past MaxEntries,
// those that end soonest. The caller holds mu.
func (l *List) prune(now time.Time) {
	for id, e := range l.m {
		if !e.Until.After(now) {
			delete(l.m, id)
		}
	}
	if len(l.m) <= MaxEntries {
		return
	}
	all := make([]Entry, 0, len(l.m))
	for _, e := range l.m {
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b Entry) int { return a.Until.Compare(b.Until) })
	for _, e := range all[:len(all)-MaxEntries] {
		delete(l.m, e.ID)
	}
}

// save writes the list whole, synced, under a temporary name renamed over
// the file. The caller holds mu.
func (l *List) save() error {
	if l.path == "" {
		return nil
	}
	all := make([]Entry, 0, len(l.m))
	for _, e := range l.m {
		all = append(all, e)
	}
	b, _ := json.MarshalIndent(all, "", "  ")
	if err := safefile.Write(l.path, b, 0o600); err != nil {
		return fmt.Errorf("saving the revocation list: %w", err)
	}
	return nil
}
