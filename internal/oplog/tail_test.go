package oplog

import (
	"errors"
	"io"
	"log/slog"
	"testing"
)

func TestTail(t *testing.T) {
	l := New(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if got := l.Tail(0, 10); len(got) != 0 {
		t.Fatalf("empty log: Tail = %v", got)
	}
	for i := range TailSize + 44 {
		op, _ := l.Begin("test.op", Fields{Path: "/X1/a", What: map[string]any{"i": i}})
		if i%3 == 0 {
			op.End(errors.New("boom"))
		} else {
			op.End(nil)
		}
	}
	last := uint64(TailSize + 44)
	tests := []struct {
		name        string
		after       uint64
		n           int
		first, want uint64 // the first sequence number, and how many
	}{
		{"last five", 0, 5, last - 4, 5},
		{"all kept", 0, 0, last - TailSize + 1, TailSize},
		{"after, unlimited", last - 3, 0, last - 2, 3},
		{"after, limited", last - 10, 4, last - 3, 4},
		{"nothing newer", last, 10, 0, 0},
		{"after older than the ring", 5, 0, last - TailSize + 1, TailSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := l.Tail(tc.after, tc.n)
			if uint64(len(got)) != tc.want {
				t.Fatalf("Tail(%d, %d) gave %d entries, want %d", tc.after, tc.n, len(got), tc.want)
			}
			for i, e := range got {
				seq := tc.first + uint64(i)
				if e.Seq != seq {
					t.Fatalf("entry %d has seq %d, want %d", i, e.Seq, seq)
				}
				if e.Op != "test.op" {
					t.Fatalf("entry %d op %q", i, e.Op)
				}
				i := int(seq - 1)
				wantAttrs := "path=/X1/a i=" + itoa(i)
				if e.Attrs != wantAttrs {
					t.Fatalf("entry %d attrs %q, want %q", seq, e.Attrs, wantAttrs)
				}
				if failed := i%3 == 0; failed != (e.Err == "boom") {
					t.Fatalf("entry %d err %q (failed %v)", seq, e.Err, failed)
				}
				if e.Time.IsZero() {
					t.Fatalf("entry %d has no time", seq)
				}
			}
		})
	}
}

// An End that comes after its entry left the ring changes nothing there.
func TestTailLateEnd(t *testing.T) {
	l := New(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	early, _ := l.Begin("early", Fields{})
	for range TailSize {
		l.Begin("later", Fields{})
	}
	early.End(errors.New("late failure"))
	for _, e := range l.Tail(0, 0) {
		if e.Err != "" || e.Op != "later" {
			t.Fatalf("entry %+v: want only the later operations, unfailed", e)
		}
	}
}

func itoa(i int) string { return slog.IntValue(i).String() }
