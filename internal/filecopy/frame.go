// Package filecopy owns `circuit cp`: files and directories carried as a
// tar stream inside checksummed frames, written so that a copy cut short
// leaves nothing under a final name, and confined to a root that no path
// trick escapes.
//
// The frames: each is a 4-byte big-endian length and that many bytes of
// the tar stream. A length of 0 ends the stream and is followed by the
// 8-byte xxhash64 of every byte before it; a length of errFrame instead
// carries the sender's error (a 4-byte length and the message). A reader
// that meets the end of the connection before the end frame, or a sum
// that differs, fails, and the receiver keeps nothing.
//
// Files are written to hidden temporary names beside their final ones
// (.circuit-cp-*), and renamed into place only once the whole stream has
// been read and its checksum matched. All paths are resolved in an
// os.Root: "/" on a server started without -fs-root, its -fs-root
// directory otherwise, which neither ".." nor a symbolic link can leave.
package filecopy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/cespare/xxhash/v2"
)

const (
	// maxFrame bounds one frame's payload.
	maxFrame = 1 << 20
	// errFrame is the length that announces the sender's error.
	errFrame = 0xFFFFFFFF
	// maxErr bounds an error message.
	maxErr = 64 << 10
)

// ErrChecksum is the error of a stream whose checksum does not match.
var ErrChecksum = errors.New("checksum mismatch: the copy was corrupted on the way")

// ErrCutShort is the error of a stream that ended before its end frame.
var ErrCutShort = errors.New("the copy was cut short")

// RemoteError is an error the sender reported in the stream.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// Writer frames what is written to it.
type Writer struct {
	raw io.Writer
	w   *bufio.Writer
	sum *xxhash.Digest
}

// NewWriter returns a Writer onto w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{raw: w, w: bufio.NewWriterSize(w, 256<<10), sum: xxhash.New()}
}

// bigChunk is the size from which a chunk goes out with its header in
// one vectored write rather than through the buffer: one copy fewer.
const bigChunk = 64 << 10

// Write sends p as one frame or more.
func (fw *Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxFrame)]
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(chunk)))
		if len(chunk) >= bigChunk {
			if err := fw.w.Flush(); err != nil {
				return n, err
			}
			bufs := net.Buffers{hdr[:], chunk}
			if _, err := bufs.WriteTo(fw.raw); err != nil {
				return n, err
			}
		} else {
			if _, err := fw.w.Write(hdr[:]); err != nil {
				return n, err
			}
			if _, err := fw.w.Write(chunk); err != nil {
				return n, err
			}
		}
		fw.sum.Write(chunk)
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// Close sends the end frame and the checksum, and flushes. It does not
// close the underlying writer.
func (fw *Writer) Close() error {
	var end [12]byte
	binary.BigEndian.PutUint64(end[4:], fw.sum.Sum64())
	if _, err := fw.w.Write(end[:]); err != nil {
		return err
	}
	return fw.w.Flush()
}

// Fail sends the sender's error in place of the end frame, and flushes.
func (fw *Writer) Fail(err error) error {
	msg := err.Error()
	if len(msg) > maxErr {
		msg = msg[:maxErr]
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], errFrame)
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(msg)))
	if _, err := fw.w.Write(append(hdr[:], msg...)); err != nil {
		return err
	}
	return fw.w.Flush()
}

// Reader reads the payload of framed data; it returns io.EOF only after a
// matching checksum.
type Reader struct {
	r    *bufio.Reader
	sum  *xxhash.Digest
	left int   // bytes left in the current frame
	err  error // sticky: io.EOF once verified, or the failure
}

// NewReader returns a Reader of the frames on r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 256<<10), sum: xxhash.New()}
}

func (fr *Reader) Read(p []byte) (int, error) {
	for fr.left == 0 {
		if fr.err != nil {
			return 0, fr.err
		}
		fr.err = fr.next()
	}
	n, err := fr.r.Read(p[:min(len(p), fr.left)])
	fr.sum.Write(p[:n])
	fr.left -= n
	if err != nil && fr.left > 0 {
		fr.err = cut(err)
		return n, fr.err
	}
	return n, nil
}

// next reads a frame header: the next frame's length, or the end.
func (fr *Reader) next() error {
	var hdr [4]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return cut(err)
	}
	switch n := binary.BigEndian.Uint32(hdr[:]); {
	case n == 0:
		var s [8]byte
		if _, err := io.ReadFull(fr.r, s[:]); err != nil {
			return cut(err)
		}
		if binary.BigEndian.Uint64(s[:]) != fr.sum.Sum64() {
			return ErrChecksum
		}
		return io.EOF
	case n == errFrame:
		if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
			return cut(err)
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if size > maxErr {
			return fmt.Errorf("bad stream: an error of %d bytes", size)
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(fr.r, msg); err != nil {
			return cut(err)
		}
		return &RemoteError{Msg: string(msg)}
	case n > maxFrame:
		return fmt.Errorf("bad stream: a frame of %d bytes", n)
	default:
		fr.left = int(n)
		return nil
	}
}

// Copy copies r to w through a buffer of CopyBuffer bytes, never through
// either side's own smaller one (os.File's ReadFrom uses 32 KiB).
func Copy(w io.Writer, r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, make([]byte, CopyBuffer))
}

// CopyBuffer is the buffer of Copy: a frame's worth.
const CopyBuffer = maxFrame

// Drain reads the rest of the stream, so that its checksum is checked.
func (fr *Reader) Drain() error {
	_, err := io.Copy(io.Discard, fr)
	return err
}

func cut(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrCutShort
	}
	return fmt.Errorf("%w: %v", ErrCutShort, err)
}
