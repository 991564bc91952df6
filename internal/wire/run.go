package wire

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// A run stream (StreamHeader.Stream "run", then a FrameSpec) is one copy
// of circuit run on one connection: the server makes the process element at
// the header's path, answers OK once it has started, and then sends its
// output and, last, its exit as frames; the client sends its stdin as
// frames. The connection is the run's lifetime: when it breaks before the
// exit frame, the server kills the process. Against a process made, read
// and waited for with separate calls, this is one connection instead of a
// control call, two streams and another call, per server.

// RunSpec is the command of a run stream.
type RunSpec struct {
	Path string
	Args []string `json:",omitempty"`
	Env  []string `json:",omitempty"`
	Dir  string   `json:",omitempty"`
	// Stdin says that stdin frames follow; without it the process's stdin
	// is closed from the start.
	Stdin bool `json:",omitempty"`
	// Timeout, when not 0, is how long the process may run before the
	// server kills it: the client's own deadline, kept where it holds even
	// when the client cannot be heard (stdin the process does not read
	// blocks the connection's reader).
	Timeout time.Duration `json:",omitempty"`
	// Selector is the label selector that chose the servers (circuit run
	// -l), for the servers' records only.
	Selector string `json:",omitempty"`
}

// RunExit is the payload of the last frame of a run stream.
type RunExit struct {
	ExitCode int    // 128+signal when a signal killed it
	Signal   string `json:",omitempty"`
	Exit     string `json:",omitempty"` // why it failed, "" for success
}

// Frame tags of a run stream.
const (
	FrameStdout   byte = 'o' // server to client: output
	FrameStderr   byte = 'e'
	FrameExit     byte = 'x' // server to client, last: a RunExit in JSON
	FrameSpec     byte = 'r' // client to server, first: a RunSpec in JSON
	FrameStdin    byte = 'i' // client to server: input
	FrameStdinEnd byte = 'c' // client to server: stdin is closed
)

// MaxFrame bounds a frame's payload.
const MaxFrame = 1 << 20

const frameHeader = 5 // the tag, then the payload's length (uint32)

// FrameWriter writes frames, each with one Write, from any number of
// goroutines.
type FrameWriter struct {
	w   io.Writer
	mu  sync.Mutex
	buf []byte
}

// NewFrameWriter returns a FrameWriter on w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// Write sends one frame; a payload over MaxFrame goes as several.
func (f *FrameWriter) Write(tag byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		n := min(len(p), MaxFrame)
		f.buf = AppendFrame(f.buf[:0], tag, p[:n])
		if _, err := f.w.Write(f.buf); err != nil {
			return err
		}
		if p = p[n:]; len(p) == 0 {
			return nil
		}
	}
}

// Tagged returns an io.Writer that sends everything written to it as
// frames of one tag.
func (f *FrameWriter) Tagged(tag byte) io.Writer { return taggedWriter{f, tag} }

type taggedWriter struct {
	f   *FrameWriter
	tag byte
}

func (t taggedWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := t.f.Write(t.tag, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// AppendFrame appends a frame of one payload (at most MaxFrame) to b.
func AppendFrame(b []byte, tag byte, p []byte) []byte {
	b = append(b, tag, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(p)))
	return append(b, p...)
}

// WriteJSON sends v, marshalled, as one frame.
func (f *FrameWriter) WriteJSON(tag byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return f.Write(tag, b)
}

// ReadFrame reads one frame into buf (grown if needed) and returns its tag
// and payload, which aliases buf.
func ReadFrame(r io.Reader, buf []byte) (tag byte, payload, grown []byte, err error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, buf, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxFrame {
		return 0, nil, buf, fmt.Errorf("%w: a frame of %d bytes, limit %d", ErrBadPreamble, n, MaxFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	payload = buf[:n]
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, buf, err
	}
	return h[0], payload, buf, nil
}
