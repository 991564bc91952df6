// Package oplog owns the operation log: every operation a server executes
// gets the next number of a per-server sequence and is logged, in the order
// it was executed, before it runs. Its outcome is logged under the same
// number when it fails or when it changed state. The latest operations are
// also kept in memory, in a ring of TailSize entries, for Tail (the web
// console shows them).
package oplog

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// TailSize is how many of the latest operations a Log keeps for Tail.
const TailSize = 256

// Log numbers and records operations. The zero value is not usable; use New.
type Log struct {
	log  *slog.Logger
	mu   sync.Mutex
	seq  uint64
	ring [TailSize]kept // operation n at (n-1) % TailSize
}

// kept is an operation in the ring: its attributes are formatted only when
// Tail reads them, not on every operation's path.
type kept struct {
	Entry
	attrs []slog.Attr
}

// Entry is one operation as Tail returns it.
type Entry struct {
	Seq   uint64
	Time  time.Time
	Op    string
	Attrs string `json:",omitempty"` // the attributes, "key=value" separated by spaces
	Err   string `json:",omitempty"` // set when the operation failed
}

// New returns a log writing to logger.
func New(logger *slog.Logger) *Log { return &Log{log: logger} }

// Op is one operation in flight.
type Op struct {
	l     *Log
	Seq   uint64
	name  string
	start time.Time
}

// Begin numbers the operation and logs it. Numbering and writing happen under
// one lock, so the log's order is the order of numbers. The tail keeps attrs:
// the caller must not change them afterwards.
func (l *Log) Begin(name string, attrs ...slog.Attr) *Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	op := &Op{l: l, Seq: l.seq, name: name, start: time.Now()}
	l.ring[(op.Seq-1)%TailSize] = kept{Entry: Entry{Seq: op.Seq, Time: op.start, Op: name}, attrs: attrs}
	l.log.LogAttrs(context.Background(), slog.LevelInfo, "op",
		append([]slog.Attr{slog.Uint64("seq", op.Seq), slog.String("op", name)}, attrs...)...)
	return op
}

// End logs a failed operation's error under its number.
func (op *Op) End(err error) {
	if err == nil {
		return
	}
	l := op.l
	l.mu.Lock()
	if e := &l.ring[(op.Seq-1)%TailSize]; e.Seq == op.Seq {
		e.Err = err.Error()
	}
	l.mu.Unlock()
	op.l.log.LogAttrs(context.Background(), slog.LevelWarn, "op failed",
		slog.Uint64("seq", op.Seq), slog.String("op", op.name),
		slog.Duration("took", time.Since(op.start)), slog.String("err", err.Error()))
}

// Last returns the number of the latest operation.
func (l *Log) Last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Tail returns up to n of the latest operations with numbers above after,
// oldest first (every one kept when n <= 0). Only the last TailSize
// operations are kept.
func (l *Log) Tail(after uint64, n int) []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := after + 1
	if l.seq >= TailSize && first <= l.seq-TailSize {
		first = l.seq - TailSize + 1
	}
	if n > 0 && l.seq >= first && l.seq-first+1 > uint64(n) {
		first = l.seq - uint64(n) + 1
	}
	var out []Entry
	for s := first; s <= l.seq; s++ {
		k := l.ring[(s-1)%TailSize]
		k.Attrs = formatAttrs(k.attrs)
		out = append(out, k.Entry)
	}
	return out
}

func formatAttrs(attrs []slog.Attr) string {
	if len(attrs) == 0 {
		return ""
	}
	var b strings.Builder
	for i, a := range attrs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.String())
	}
	return b.String()
}
