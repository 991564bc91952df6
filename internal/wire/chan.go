package wire

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
)

// A channel stream (StreamHeader.Stream "chan", Path the channel) carries
// sends and receives on one channel for as long as its client keeps it,
// one operation at a time, as frames of the run stream's shape (a tag and a
// length-prefixed payload). Against a gRPC call per message, the stream's
// cost is set up once, and a message is one frame each way.
//
// A send is ChanWhole (a message of at most 32 KiB), or ChanPart frames
// then ChanLast; the server answers ChanOK once the channel accepted it. A
// receive is ChanRecv; the server answers with the message (ChanWhole, or
// ChanPart frames then an empty ChanLast), and the client acknowledges it
// whole with ChanAck, on which the server counts it delivered. The client
// reports the message's end once its acknowledgement is written, without
// waiting for an answer: the acknowledgement is on its way ahead of
// anything else the client sends, and even a client that exits at once
// leaves it to its kernel to deliver. A ChanFault (a
// Refusal in JSON) ends the operation and the stream. A client that closes
// the stream in the middle of an operation ends it: a send not yet accepted
// is not sent, and a message not acknowledged is given back.
const (
	ChanWhole byte = 'm' // a whole message, either way
	ChanPart  byte = 'p' // a piece of a longer message; more follows
	ChanLast  byte = 'l' // the last piece of a longer message
	ChanRecv  byte = 'R' // client: receive the next message
	ChanAck   byte = 'A' // client: the message arrived whole
	ChanOK    byte = 'k' // server: the send was accepted, or the message counted delivered
	ChanFault byte = 'f' // server: the operation failed, then the stream ends
)

// FrameSender writes frames on one connection, each with one write, and
// a large payload without copying it (writev where the connection has it).
// It is for one goroutine at a time.
type FrameSender struct {
	w   io.Writer
	buf []byte
}

// NewFrameSender returns a FrameSender on w.
func NewFrameSender(w io.Writer) *FrameSender { return &FrameSender{w: w} }

// copyBelow is the payload size below which a frame is copied into one
// buffer, which costs less than a vector.
const copyBelow = 16 << 10

// Send sends one frame of at most MaxFrame bytes.
func (f *FrameSender) Send(tag byte, p []byte) error {
	if len(p) > MaxFrame {
		return fmt.Errorf("a frame of %d bytes, limit %d", len(p), MaxFrame)
	}
	if len(p) < copyBelow {
		f.buf = AppendFrame(f.buf[:0], tag, p)
		_, err := f.w.Write(f.buf)
		return err
	}
	f.buf = append(f.buf[:0], tag, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(f.buf[1:], uint32(len(p)))
	bufs := net.Buffers{f.buf, p}
	_, err := bufs.WriteTo(f.w)
	return err
}

// EncodeRefusal is the payload of a ChanFault frame.
func EncodeRefusal(r *Refusal) []byte {
	b, _ := json.Marshal(r) // a struct of a number and a string
	return b
}

// DecodeRefusal reads a ChanFault frame's payload.
func DecodeRefusal(p []byte) *Refusal {
	var r Refusal
	if err := json.Unmarshal(p, &r); err != nil || r.Code == CodeOK {
		return &Refusal{Code: CodeRemote, Msg: fmt.Sprintf("an unreadable fault from the server: %q", p)}
	}
	return &r
}
