package oplog

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestAuditRecords: the audit file gets a begin and an end record for every
// operation, and an exit record when a process ends, each one JSON line
// under the operation's number; Records gives the same from memory, and a
// follower gets them as they are made.
func TestAuditRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit")
	a, err := OpenAudit(path)
	if err != nil {
		t.Fatal(err)
	}
	l := New(slog.New(slog.NewTextHandler(io.Discard, nil)), a)
	f, before := l.Follow()
	if before != 0 {
		t.Fatalf("follow before any operation: latest %d", before)
	}
	mk, err := l.Begin("Proc.Make", Fields{Path: "/X1/p", Who: "alice (credential 01)", From: "10.0.0.9:5000", Via: "10.0.0.1:11022",
		What: map[string]any{"Command": "/bin/echo", "Args": []string{"hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	mk.End(nil)
	cp, _ := l.Begin("Stream.put", Fields{Path: "/X1", Who: "key", What: map[string]any{"File": "/tmp/x"}})
	cp.Note("Bytes", 42)
	cp.End(errors.New("disk full"))
	mk.Exited(map[string]any{"ExitCode": 0})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit file: %v, %v; want mode 600", fi, err)
	}

	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var lines []Record
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, r)
	}
	want := []struct {
		seq   uint64
		event string
	}{{1, Begin}, {1, End}, {2, Begin}, {2, End}, {1, Exit}}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %+v", len(lines), len(want), lines)
	}
	for i, w := range want {
		if lines[i].Seq != w.seq || lines[i].Event != w.event {
			t.Fatalf("line %d: seq %d %s, want %d %s", i, lines[i].Seq, lines[i].Event, w.seq, w.event)
		}
	}
	if r := lines[0]; r.Who != "alice (credential 01)" || r.From != "10.0.0.9:5000" || r.Via != "10.0.0.1:11022" || r.What["Command"] != "/bin/echo" || r.Path != "/X1/p" {
		t.Errorf("begin record %+v", r)
	}
	if r := lines[3]; r.Err != "disk full" || r.What["Bytes"] != float64(42) || r.Took <= 0 {
		t.Errorf("end record of the copy %+v", r)
	}
	if r := lines[4]; r.What["ExitCode"] != float64(0) || r.Op != "Proc.Make" {
		t.Errorf("exit record %+v", r)
	}

	mem := l.Records(0, 0)
	wantMem := []struct {
		seq   uint64
		event string
	}{{1, Begin}, {1, End}, {1, Exit}, {2, Begin}, {2, End}}
	if len(mem) != len(wantMem) {
		t.Fatalf("Records: %+v", mem)
	}
	for i, w := range wantMem {
		if mem[i].Seq != w.seq || mem[i].Event != w.event {
			t.Fatalf("Records[%d]: seq %d %s, want %d %s", i, mem[i].Seq, mem[i].Event, w.seq, w.event)
		}
	}
	for i := range len(want) {
		select {
		case r := <-f.C():
			if r.Seq != want[i].seq || r.Event != want[i].event {
				t.Fatalf("followed record %d: %d %s", i, r.Seq, r.Event)
			}
		case <-time.After(time.Second):
			t.Fatal("a record did not reach the follower")
		}
	}
	f.Close()
	if _, open := <-f.C(); open || f.Lagged() {
		t.Fatal("a closed follower still open, or said to lag")
	}
}

// TestFollowerFallsBehind: a follower that does not read is ended, saying
// it fell behind, and never blocks the log.
func TestFollowerFallsBehind(t *testing.T) {
	l := New(slog.New(slog.DiscardHandler), nil)
	f, _ := l.Follow()
	for range FollowBuffer + 1 {
		op, _ := l.Begin("x", Fields{})
		op.End(nil)
	}
	n := 0
	for range f.C() {
		n++
	}
	if n != FollowBuffer || !f.Lagged() {
		t.Fatalf("read %d records, lagged %v; want %d and lagged", n, f.Lagged(), FollowBuffer)
	}
	f.Close() // after it ended: does nothing
}

// TestAuditFailureRefuses: when the audit file cannot take a begin record,
// Begin says so, so that the operation does not run unrecorded.
func TestAuditFailureRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit")
	a, err := OpenAudit(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ro, err := os.Open(path) // writes to it fail
	if err != nil {
		t.Fatal(err)
	}
	good := a.f
	a.f = ro
	defer func() { a.f = good; ro.Close() }()
	l := New(slog.New(slog.DiscardHandler), a)
	if _, err := l.Begin("Proc.Make", Fields{}); err == nil {
		t.Fatal("Begin with an audit file that takes nothing succeeded")
	}
	if _, err := OpenAudit(filepath.Join(path, "under-a-file")); err == nil {
		t.Fatal("opened an audit file below a file")
	}
}
