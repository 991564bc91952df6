// Package oplog owns the operation log: every operation a server executes
// gets the next number of a per-server sequence, and records under that
// number say when it began (who asked, from where, what), when it ended
// (its error, if any) and, for a process, when the process exited.
//
// Records go to three places. The server's log gets a line when an
// operation begins, and another when it fails or its process exits. The
// audit file (start -audit FILE, audit.go), when set, gets every record as
// a JSON line, written before the operation's effect is visible. And the
// latest TailSize operations are kept in memory with their records, for
// Tail (the web console), Records and Follow (circuit log).
package oplog

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// TailSize is how many of the latest operations a Log keeps in memory.
const TailSize = 256

// The events of an operation's records.
const (
	Begin = "begin" // it was asked for and is about to run
	End   = "end"   // it returned (Err says how it failed)
	Exit  = "exit"  // the process it started exited (What holds the status)
)

// Fields are what a begin record says of an operation besides its number
// and name.
type Fields struct {
	Path string // the anchor it acts on, if any
	Who  string // "key", "anyone", or a credential's name and ID
	From string // the original client's address
	Via  string // the relay's address, when it came through one
	// What are the operation's own facts: a command's Path, Args and Dir,
	// a signal, the files of a copy.
	What map[string]any
}

// Record is one line of the audit file.
type Record struct {
	Seq   uint64
	Time  time.Time
	Event string // Begin, End or Exit
	Op    string
	Path  string         `json:",omitempty"`
	Who   string         `json:",omitempty"`
	From  string         `json:",omitempty"`
	Via   string         `json:",omitempty"`
	What  map[string]any `json:",omitempty"`
	Err   string         `json:",omitempty"`
	// Took is, in an end record, how long the operation ran.
	Took Duration `json:",omitempty"`
}

// Duration marshals as Go's duration text ("1.5ms").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Log numbers and records operations. The zero value is not usable; use New.
type Log struct {
	log   *slog.Logger
	audit *Audit // nil without an audit file

	mu        sync.Mutex
	seq       uint64
	ring      [TailSize]kept // operation n at (n-1) % TailSize
	followers map[*Follower]struct{}
}

// kept is an operation in the ring, with its records so far.
type kept struct {
	begin     Record
	end, exit *Record
}

// New returns a log writing to logger and, if audit is not nil, to the
// audit file.
func New(logger *slog.Logger, audit *Audit) *Log {
	return &Log{log: logger, audit: audit, followers: map[*Follower]struct{}{}}
}

// Op is one operation in flight.
type Op struct {
	l     *Log
	Seq   uint64
	name  string
	start time.Time
	mu    sync.Mutex
	notes map[string]any
	ended bool
}

// Begin numbers the operation and records it. Numbering and writing happen
// under one lock, so the records' order is the order of numbers. The error
// is the audit file's, when it could not take the record: the operation
// must then not run. The record keeps f.What: the caller must not change it
// afterwards.
func (l *Log) Begin(name string, f Fields) (*Op, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	op := &Op{l: l, Seq: l.seq, name: name, start: time.Now()}
	rec := Record{Seq: op.Seq, Time: op.start, Event: Begin, Op: name, Path: f.Path, Who: f.Who, From: f.From, Via: f.Via, What: f.What}
	l.ring[(op.Seq-1)%TailSize] = kept{begin: rec}
	if l.log.Enabled(context.Background(), slog.LevelInfo) { // its attributes cost more than the rest
		attrs := append([]slog.Attr{slog.Uint64("seq", op.Seq), slog.String("op", name)}, fieldAttrs(f)...)
		l.log.LogAttrs(context.Background(), slog.LevelInfo, "op", attrs...)
	}
	return op, l.emit(rec)
}

// emit writes a record to the audit file and hands it to the followers.
// The caller holds mu.
func (l *Log) emit(rec Record) error {
	var err error
	if l.audit != nil {
		if err = l.audit.write(rec); err != nil {
			l.log.Error("audit: the record could not be written", "seq", rec.Seq, "op", rec.Op, "event", rec.Event, "err", err)
			err = fmt.Errorf("the audit file cannot be written: %w", err)
		}
	}
	for f := range l.followers {
		select {
		case f.c <- rec:
		default: // it fell behind: it ends, saying so
			f.lagged = true
			delete(l.followers, f)
			close(f.c)
		}
	}
	return err
}

// Note adds a fact to the operation's end record (the bytes a copy wrote).
func (op *Op) Note(key string, v any) {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.notes == nil {
		op.notes = map[string]any{}
	}
	op.notes[key] = v
}

// End records the operation's end and its error, if any; the log gets a
// line only for a failure. Only the first End of an operation counts.
func (op *Op) End(err error) {
	rec := Record{Seq: op.Seq, Time: time.Now(), Event: End, Op: op.name, Took: Duration(time.Since(op.start))}
	op.mu.Lock()
	ended := op.ended
	op.ended, rec.What = true, op.notes
	op.mu.Unlock()
	if ended {
		return
	}
	if err != nil {
		rec.Err = err.Error()
		op.l.log.LogAttrs(context.Background(), slog.LevelWarn, "op failed",
			slog.Uint64("seq", op.Seq), slog.String("op", op.name),
			slog.Duration("took", time.Duration(rec.Took)), slog.String("err", rec.Err))
	}
	op.l.record(rec, func(k *kept) { k.end = &rec })
}

// Exited records, under the operation's number, that the process it
// started exited, with status (ExitCode, Signal, Exit).
func (op *Op) Exited(status map[string]any) {
	rec := Record{Seq: op.Seq, Time: time.Now(), Event: Exit, Op: op.name, What: status}
	attrs := []slog.Attr{slog.Uint64("seq", op.Seq), slog.String("op", op.name)}
	for _, k := range sortedKeys(status) {
		attrs = append(attrs, slog.Any(k, status[k]))
	}
	op.l.log.LogAttrs(context.Background(), slog.LevelInfo, "op exit", attrs...)
	op.l.record(rec, func(k *kept) { k.exit = &rec })
}

// record emits a later record of an operation and keeps it with the
// operation while the ring holds it.
func (l *Log) record(rec Record, keep func(*kept)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k := &l.ring[(rec.Seq-1)%TailSize]; k.begin.Seq == rec.Seq {
		keep(k)
	}
	l.emit(rec) // its error is logged: what it recorded has happened
}

// Last returns the number of the latest operation.
func (l *Log) Last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// span returns the first sequence number of up to n of the latest
// operations with numbers above after (every one kept when n <= 0). The
// caller holds mu.
func (l *Log) span(after uint64, n int) uint64 {
	first := after + 1
	if l.seq >= TailSize && first <= l.seq-TailSize {
		first = l.seq - TailSize + 1
	}
	if n > 0 && l.seq >= first && l.seq-first+1 > uint64(n) {
		first = l.seq - uint64(n) + 1
	}
	return first
}

// Entry is one operation as Tail returns it, for the web console.
type Entry struct {
	Seq   uint64
	Time  time.Time
	Op    string
	Attrs string `json:",omitempty"` // the fields, "key=value" separated by spaces
	Err   string `json:",omitempty"` // set when the operation failed
}

// Tail returns up to n of the latest operations with numbers above after,
// oldest first (every one kept when n <= 0). Only the last TailSize
// operations are kept.
func (l *Log) Tail(after uint64, n int) []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Entry
	for s := l.span(after, n); s <= l.seq; s++ {
		k := l.ring[(s-1)%TailSize]
		e := Entry{Seq: s, Time: k.begin.Time, Op: k.begin.Op, Attrs: formatAttrs(fieldAttrs(fieldsOf(k.begin)))}
		if k.end != nil {
			e.Err = k.end.Err
		}
		out = append(out, e)
	}
	return out
}

// Records returns the records of up to n of the latest operations with
// numbers above after (every one kept when n <= 0), by number, each
// operation's in the order they were made.
func (l *Log) Records(after uint64, n int) []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Record
	for s := l.span(after, n); s <= l.seq; s++ {
		k := l.ring[(s-1)%TailSize]
		out = append(out, k.begin)
		later := []*Record{k.end, k.exit}
		if k.end != nil && k.exit != nil && k.exit.Time.Before(k.end.Time) {
			later[0], later[1] = k.exit, k.end
		}
		for _, r := range later {
			if r != nil {
				out = append(out, *r)
			}
		}
	}
	return out
}

// FollowBuffer is how many records a follower may fall behind by before it
// is ended.
const FollowBuffer = 4096

// Follower receives every record made after Follow, in order.
type Follower struct {
	l      *Log
	c      chan Record
	lagged bool // set before c is closed when it fell behind
}

// Follow returns a follower of the records made from now on, and the
// number of the latest operation before it.
func (l *Log) Follow() (*Follower, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := &Follower{l: l, c: make(chan Record, FollowBuffer)}
	l.followers[f] = struct{}{}
	return f, l.seq
}

// C delivers the records; it is closed when the follower fell behind
// (Lagged) or was closed.
func (f *Follower) C() <-chan Record { return f.c }

// Lagged tells, once C is closed, whether the follower fell behind.
func (f *Follower) Lagged() bool {
	f.l.mu.Lock()
	defer f.l.mu.Unlock()
	return f.lagged
}

// Close stops the follower.
func (f *Follower) Close() {
	f.l.mu.Lock()
	defer f.l.mu.Unlock()
	if _, ok := f.l.followers[f]; ok {
		delete(f.l.followers, f)
		close(f.c)
	}
}

func fieldsOf(r Record) Fields {
	return Fields{Path: r.Path, Who: r.Who, From: r.From, Via: r.Via, What: r.What}
}

// fieldAttrs are the log line's attributes for f.
func fieldAttrs(f Fields) []slog.Attr {
	var attrs []slog.Attr
	for _, a := range []struct{ k, v string }{{"path", f.Path}, {"from", f.From}, {"via", f.Via}, {"who", f.Who}} {
		if a.v != "" {
			attrs = append(attrs, slog.String(a.k, a.v))
		}
	}
	for _, k := range sortedKeys(f.What) {
		attrs = append(attrs, slog.Any(k, f.What[k]))
	}
	return attrs
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func formatAttrs(attrs []slog.Attr) string {
	var b strings.Builder
	for i, a := range attrs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.String())
	}
	return b.String()
}
