// Package graveyard owns the records that workers leave when they end
// (seed 003's graveyard): who a worker was (its ID, function, binary, server,
// directories), who spawned it (a worker, or a client by its credential and
// address), when it ran, why it ended, and the last of its stderr.
//
// The server that ran a worker keeps its record: in memory, and with -var in
// a file there (graveyard.jsonl), one JSON line per record appended as it is
// made, so records survive a restart; a record made again (its stderr
// completed when the worker's output is drained) supersedes the earlier
// line. The file is rewritten whole once it holds twice as many lines as
// records. Records are bounded by count and by age (Limits).
package graveyard

import (
	"bufio"
	"bytes"
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

// Record is what a worker leaves when it ends.
type Record struct {
	ID     string   // the worker's ID, R and 16 hex digits
	Func   string   // the function it ran, as registered
	Binary string   // the SHA-256 of its program's binary
	Server string   // the server that ran it
	Anchor string   // its anchor there
	Dirs   []string `json:",omitempty"` // its anchor-file-system directories
	// Parent is who spawned it: a worker's ID, or a client, "client NAME
	// at ADDRESS" (NAME is a credential's name and ID, or "key").
	Parent string
	// Replaces is the worker this one replaced (circuit respawn), which
	// had the same parent; "" for none.
	Replaces string `json:",omitempty"`
	Start    time.Time
	End      time.Time
	// Cause is why it ended: "returned", "error: MSG", "panic: MSG",
	// "signal NAME", "failed: MSG" (it could not run the function), "exit
	// N", "replaced by ID" or "host lost".
	Cause  string
	Stderr string `json:",omitempty"` // the last StderrTail bytes of its stderr
}

// StderrTail is how much of a worker's stderr its record keeps.
const StderrTail = 16 << 10

// Limits bound the records a server keeps.
type Limits struct {
	Max int           // records; 0: DefaultMax
	Age time.Duration // how long a record is kept; 0: DefaultAge
}

// The default limits.
const (
	DefaultMax = 10000
	DefaultAge = 7 * 24 * time.Hour
)

// Yard is one server's records.
type Yard struct {
	path   string // the file, "" for memory only
	limits Limits

	mu    sync.Mutex
	recs  map[string]Record
	lines int // lines in the file
	f     *os.File
}

// Open reads the records kept in dir (the server's -var; "" keeps them in
// memory only).
func Open(dir string, l Limits) (*Yard, error) {
	if l.Max <= 0 {
		l.Max = DefaultMax
	}
	if l.Age <= 0 {
		l.Age = DefaultAge
	}
	y := &Yard{limits: l, recs: map[string]Record{}}
	if dir == "" {
		return y, nil
	}
	y.path = filepath.Join(dir, "graveyard.jsonl")
	b, err := os.ReadFile(y.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the graveyard: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.ID != "" {
			y.recs[r.ID] = r // a later line supersedes
			y.lines++
		}
	}
	y.prune(time.Now())
	if err := y.compact(); err != nil {
		return nil, err
	}
	return y, nil
}

// Put keeps a record, replacing one of the same worker.
func (y *Yard) Put(r Record) error {
	y.mu.Lock()
	defer y.mu.Unlock()
	if len(r.Stderr) > StderrTail {
		r.Stderr = r.Stderr[len(r.Stderr)-StderrTail:]
	}
	y.recs[r.ID] = r
	y.prune(time.Now())
	if y.f == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := y.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("keeping the graveyard: %w", err)
	}
	if y.lines++; y.lines > 2*len(y.recs)+100 {
		return y.compact()
	}
	return nil
}

// prune drops records past the limits; the caller holds mu.
func (y *Yard) prune(now time.Time) {
	for id, r := range y.recs {
		if now.Sub(r.End) > y.limits.Age {
			delete(y.recs, id)
		}
	}
	if len(y.recs) <= y.limits.Max {
		return
	}
	all := y.sorted(nil)
	for _, r := range all[y.limits.Max:] {
		delete(y.recs, r.ID)
	}
}

// compact rewrites the file with the records kept, and opens it for
// appending; the caller holds mu (or owns y).
func (y *Yard) compact() error {
	if y.path == "" {
		return nil
	}
	var b []byte
	for _, r := range slices.Backward(y.sorted(nil)) {
		line, _ := json.Marshal(r)
		b = append(append(b, line...), '\n')
	}
	if y.f != nil {
		y.f.Close()
		y.f = nil
	}
	if err := safefile.Write(y.path, b, 0o600); err != nil {
		return fmt.Errorf("keeping the graveyard: %w", err)
	}
	f, err := os.OpenFile(y.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("keeping the graveyard: %w", err)
	}
	y.f, y.lines = f, len(y.recs)
	return nil
}

// sorted returns the records that keep says to (all for nil), newest end
// first; the caller holds mu.
func (y *Yard) sorted(keep func(Record) bool) []Record {
	var out []Record
	for _, r := range y.recs {
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Record) int {
		if c := b.End.Compare(a.End); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.ID), []byte(b.ID))
	})
	return out
}

// List returns the records that keep says to (all for nil), newest first.
func (y *Yard) List(keep func(Record) bool) []Record {
	y.mu.Lock()
	defer y.mu.Unlock()
	return y.sorted(keep)
}

// Close closes the file.
func (y *Yard) Close() error {
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.f == nil {
		return nil
	}
	err := y.f.Close()
	y.f = nil
	return err
}
