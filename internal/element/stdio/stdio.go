// Package stdio is the server's end of an element's standard streams, shared
// by processes and containers: at most one client per stream at a time,
// output copied through large buffers with back-pressure, the rest of an
// output discarded once its reader goes away, and stdin closed by its
// writer's EOF.
package stdio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrBusy is returned to a second concurrent client of a stream.
var ErrBusy = errors.New("already in use by another client")

// ErrClosed is returned for a stream that has ended.
var ErrClosed = errors.New("already closed")

// Streams are the stdin, stdout and stderr of one element.
type Streams struct {
	mu      sync.Mutex
	stdin   stream
	outputs map[string]*stream
	// released has a value after a reader of an output lets go of it
	// (see Released).
	released chan struct{}
}

type stream struct {
	r     io.ReadCloser  // output streams
	w     io.WriteCloser // stdin: Close sends EOF
	busy  bool
	ended bool
	tail  *tailKeeper // an output's last bytes, when kept (KeepTail)
	// pre holds what Settle read of an output before any reader came: it
	// is read first.
	pre *bytes.Reader
}

// source is what an output's reader reads: what Settle read, then the rest.
func (st *stream) source() io.Reader {
	if st.pre == nil {
		return st.r
	}
	return io.MultiReader(st.pre, st.r)
}

// Settle reads, for an output nobody has claimed, what its pipe holds
// (waiting at most within for more), so that what KeepTail keeps has it;
// a reader that comes later reads it all the same. It is for an element
// that has exited: its output is finite, unless a descendant holds the pipe.
func (s *Streams) Settle(name string, within time.Duration) {
	st, ok := s.outputs[name]
	if !ok || s.claim(name, st) != nil {
		return
	}
	defer func() {
		s.mu.Lock()
		st.busy = false
		s.mu.Unlock()
	}()
	f, ok := st.r.(interface{ SetReadDeadline(time.Time) error })
	if st.tail != nil {
		f, ok = st.tail.ReadCloser.(interface{ SetReadDeadline(time.Time) error })
	}
	if !ok || f.SetReadDeadline(time.Now().Add(within)) != nil {
		return
	}
	b, _ := io.ReadAll(io.LimitReader(st.source(), 4<<20))
	f.SetReadDeadline(time.Time{})
	st.pre = bytes.NewReader(b) // what was read before too, if anything

}

// KeepTail keeps the last n bytes of what is read of an output, by its
// reader or by a discard, for Tail: the graveyard keeps a worker's stderr.
// Call it before the output is claimed.
func (s *Streams) KeepTail(name string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.outputs[name]; ok && st.tail == nil {
		st.tail = &tailKeeper{ReadCloser: st.r, max: n}
		st.r = st.tail
	}
}

// Tail is what KeepTail kept of an output so far.
func (s *Streams) Tail(name string) []byte {
	s.mu.Lock()
	st, ok := s.outputs[name]
	s.mu.Unlock()
	if !ok || st.tail == nil {
		return nil
	}
	return st.tail.bytes()
}

// tailKeeper keeps the last max bytes read through it.
type tailKeeper struct {
	io.ReadCloser
	max int
	mu  sync.Mutex
	buf []byte
}

func (t *tailKeeper) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if n > 0 {
		t.mu.Lock()
		t.buf = append(t.buf, p[:n]...)
		if len(t.buf) > t.max {
			t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
		}
		t.mu.Unlock()
	}
	return n, err
}

func (t *tailKeeper) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...)
}

// New takes the element's ends of its streams: stdin's Close must send EOF
// to the element.
func New(stdin io.WriteCloser, stdout, stderr io.ReadCloser) *Streams {
	return &Streams{
		stdin:    stream{w: stdin},
		outputs:  map[string]*stream{"stdout": {r: stdout}, "stderr": {r: stderr}},
		released: make(chan struct{}, 1),
	}
}

func (s *Streams) claim(name string, st *stream) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case st.busy:
		return fmt.Errorf("%s %w", name, ErrBusy)
	case st.ended:
		return fmt.Errorf("%s %w", name, ErrClosed)
	}
	st.busy = true
	return nil
}

// ClaimOutput reserves stdout or stderr for a reader that will call
// CopyOutput; it fails at once, wrapping ErrBusy or ErrClosed.
func (s *Streams) ClaimOutput(name string) error {
	st, ok := s.outputs[name]
	if !ok {
		return fmt.Errorf("no output stream %q: want stdout or stderr", name)
	}
	return s.claim(name, st)
}

// CopyOutput copies a claimed output stream to w until the element closes
// it, or w fails (the reader went away): then the rest is discarded.
func (s *Streams) CopyOutput(name string, w io.Writer) {
	st := s.outputs[name]
	if _, err := copyOut(w, st.source()); err != nil {
		s.mu.Lock()
		st.ended = true // nobody reads the rest
		s.mu.Unlock()
		io.Copy(io.Discard, st.source())
	}
	s.endOutput(st)
}

func (s *Streams) endOutput(st *stream) {
	s.mu.Lock()
	st.ended, st.busy = true, false
	s.mu.Unlock()
	st.r.Close()
	select {
	case s.released <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// Pending reports whether output remains for a reader: a reader is at work,
// or an unread output holds buffered bytes. An element whose streams are
// files (pipes) is asked how much they hold.
func (s *Streams) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.outputs {
		if st.ended {
			continue
		}
		if st.busy || st.pre != nil && st.pre.Len() > 0 {
			return true
		}
		r := io.Reader(st.r)
		if st.tail != nil {
			r = st.tail.ReadCloser // the pipe itself
		}
		f, ok := r.(interface {
			SyscallConn() (syscall.RawConn, error)
		})
		if !ok {
			return true // cannot tell: assume there is
		}
		rc, err := f.SyscallConn()
		if err != nil {
			return true
		}
		n := 0
		rc.Control(func(fd uintptr) {
			var err error
			if n, err = unix.IoctlGetInt(int(fd), unix.TIOCINQ); err != nil {
				n = 1
			}
		})
		if n > 0 {
			return true
		}
	}
	return false
}

// Released yields a value after an output has ended, read to its end or
// discarded, since the last value was taken: the one waiter (the element's
// remover) then asks Pending again.
func (s *Streams) Released() <-chan struct{} { return s.released }

// ClaimStdin reserves stdin for one writer.
func (s *Streams) ClaimStdin() error { return s.claim("stdin", &s.stdin) }

// CopyStdin copies r to the claimed stdin until r ends, then closes stdin.
// An element that stopped reading its stdin is not an error.
func (s *Streams) CopyStdin(r io.Reader) error {
	w := &recordingWriter{w: s.stdin.w}
	_, err := io.Copy(w, r)
	s.endStdin()
	if err != nil && w.err != nil && gone(w.err) {
		return nil
	}
	return err
}

// CloseStdin closes stdin unused, as if its writer had sent EOF at once.
func (s *Streams) CloseStdin() error {
	if err := s.ClaimStdin(); err != nil {
		return err
	}
	s.endStdin()
	return nil
}

// AbortStdin closes stdin under a CopyStdin still at work, whose write
// then fails: for a writer that must not wait on a reader that never
// reads.
func (s *Streams) AbortStdin() { s.stdin.w.Close() }

func (s *Streams) endStdin() {
	s.mu.Lock()
	s.stdin.ended, s.stdin.busy = true, false
	s.mu.Unlock()
	s.stdin.w.Close()
}

// Discard makes sure nothing waits on the streams any more, as after a
// scrub: unclaimed outputs are read to their end and thrown away, and an
// unclaimed stdin is closed. With wait, it returns once the outputs it
// claimed have ended; without, they drain in the background.
func (s *Streams) Discard(wait bool) {
	for _, name := range []string{"stdout", "stderr"} {
		if s.ClaimOutput(name) != nil {
			continue
		}
		if wait {
			s.CopyOutput(name, failingWriter{})
		} else {
			go s.CopyOutput(name, failingWriter{})
		}
	}
	if s.ClaimStdin() == nil {
		s.endStdin()
	}
}

// failingWriter makes CopyOutput discard everything.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// recordingWriter remembers its own write error, to tell an element that
// stopped reading from a failing reader.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// gone tells whether a write failed because the element's end is closed.
func gone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrClosedPipe)
}

// copyBufs are the buffers output is copied through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyOut copies src to dst through a large pooled buffer. The fast paths
// of pipes and sockets fall back to 32 KiB copies for a pipe into a socket,
// so they are hidden.
func copyOut(dst io.Writer, src io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *buf)
}
