package graveyard

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func rec(i int, end time.Time) Record {
	return Record{ID: fmt.Sprintf("R%016x", i), Func: "f", Cause: "returned", Start: end.Add(-time.Second), End: end}
}

// TestKeepBoundAndReopen: records are kept newest first, a record put again
// supersedes the first, the bounds of count and age hold, stderr is cut to
// its tail, and a reopened file gives the same records.
func TestKeepBoundAndReopen(t *testing.T) {
	dir := t.TempDir()
	y, err := Open(dir, Limits{Max: 5, Age: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 8 {
		if err := y.Put(rec(i, now.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	old := rec(100, now.Add(-2*time.Hour))
	if err := y.Put(old); err != nil {
		t.Fatal(err)
	}
	again := rec(7, now.Add(7*time.Second))
	again.Stderr = strings.Repeat("x", StderrTail) + "the end"
	if err := y.Put(again); err != nil {
		t.Fatal(err)
	}
	got := y.List(nil)
	if len(got) != 5 || got[0].ID != again.ID || got[4].ID != rec(3, now).ID {
		t.Fatalf("kept %d records, first %s, last %s; want the 5 newest", len(got), got[0].ID, got[len(got)-1].ID)
	}
	if s := got[0].Stderr; len(s) != StderrTail || !strings.HasSuffix(s, "the end") {
		t.Fatalf("stderr kept: %d bytes", len(s))
	}
	y.Close()
	z, err := Open(dir, Limits{Max: 5, Age: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if re := z.List(nil); len(re) != 5 || re[0].ID != again.ID || re[0].Stderr != got[0].Stderr {
		t.Fatalf("reopened: %d records", len(re))
	}
	if only := z.List(func(r Record) bool { return r.ID == rec(4, now).ID }); len(only) != 1 {
		t.Fatalf("filtered: %v", only)
	}
	if fi, err := os.Stat(filepath.Join(dir, "graveyard.jsonl")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", fi, err)
	}
	// Many puts of the same records keep the file compact.
	for range 300 {
		z.Put(again)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "graveyard.jsonl"))
	if lines := strings.Count(string(b), "\n"); lines > 2*5+101 {
		t.Fatalf("the file holds %d lines for 5 records", lines)
	}
	if m, _ := Open("", Limits{}); m.limits.Max != DefaultMax || m.limits.Age != DefaultAge {
		t.Fatalf("default limits %+v", m.limits)
	}
}
