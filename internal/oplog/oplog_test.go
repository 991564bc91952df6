package oplog

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
)

func TestSequenceIsLogOrder(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	l := New(slog.New(slog.NewJSONHandler(lockedWriter{&buf, &mu}, nil)), nil)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			op, _ := l.Begin("test.op", Fields{Path: "/X1/a"})
			op.End(errors.New("boom"))
		})
	}
	wg.Wait()
	if l.Last() != 50 {
		t.Fatalf("last = %d, want 50", l.Last())
	}
	var want uint64 = 1
	dec := json.NewDecoder(&buf)
	failed := 0
	for dec.More() {
		var rec struct {
			Msg string `json:"msg"`
			Seq uint64 `json:"seq"`
			Err string `json:"err"`
		}
		if err := dec.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		switch rec.Msg {
		case "op":
			if rec.Seq != want {
				t.Fatalf("op line seq %d, want %d: lines out of order", rec.Seq, want)
			}
			want++
		case "op failed":
			failed++
			if rec.Err != "boom" {
				t.Fatalf("failure line lost the error: %+v", rec)
			}
		}
	}
	if want != 51 || failed != 50 {
		t.Fatalf("saw %d ops and %d failures, want 50 and 50", want-1, failed)
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
