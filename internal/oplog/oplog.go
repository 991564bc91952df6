// Package oplog owns the operation log: every operation a server executes
// gets the next number of a per-server sequence and is logged, in the order
// it was executed, before it runs. Its outcome is logged under the same
// number when it fails or when it changed state.
package oplog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Log numbers and records operations. The zero value is not usable; use New.
type Log struct {
	log *slog.Logger
	mu  sync.Mutex
	seq uint64
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
// one lock, so the log's order is the order of numbers.
func (l *Log) Begin(name string, attrs ...slog.Attr) *Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	op := &Op{l: l, Seq: l.seq, name: name, start: time.Now()}
	l.log.LogAttrs(context.Background(), slog.LevelInfo, "op",
		append([]slog.Attr{slog.Uint64("seq", op.Seq), slog.String("op", name)}, attrs...)...)
	return op
}

// End logs a failed operation's error under its number.
func (op *Op) End(err error) {
	if err == nil {
		return
	}
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
