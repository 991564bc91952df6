package server

import (
	"bufio"
	"context"
	"errors"
	"net"
	"time"

	"github.com/circuit-project/circuit/internal/element/channel"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/oplog"
	"github.com/circuit-project/circuit/internal/wire"
)

// A channel stream (package wire, ChanWhole and the rest) carries the sends
// and receives of one client on one channel, one at a time. Each is an
// operation of its own, Chan.Send or Chan.Recv, numbered, recorded and
// authorized as the gRPC calls of the same names are; the stream itself is
// Stream.chan.

// chanFrame is a frame read from a channel stream; its payload is its own.
type chanFrame struct {
	tag  byte
	data []byte
}

// chanStream serves one channel stream.
type chanStream struct {
	s    *Server
	conn net.Conn
	who  caller
	path string
	c    *channel.Chan
	sub  bool // a subscription: only the server sends on it
	// inMessage: a message's pieces are being read, up to its ChanLast.
	inMessage bool

	ctx    context.Context // ends when the client is gone
	frames chan chanFrame  // from the reader; closed at its end
	out    *wire.FrameSender
}

// errChanGone ends an operation whose client went away: there is no one
// to tell.
var errChanGone = errors.New("the client went away")

// serveChanStream answers a channel stream's header and serves its
// operations until the client closes it, an operation fails, or the server
// stops.
func (s *Server) serveChanStream(conn net.Conn, path string, op *oplog.Op, who caller) {
	defer op.End(nil)
	c, e, err := s.chanAt(path)
	if err != nil {
		refuseStream(conn, op, err)
		return
	}
	_, sub := e.(*subElement)
	conn.SetDeadline(time.Time{})
	if err := wire.WriteStatus(conn, nil); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	cs := &chanStream{s: s, conn: conn, who: who, path: path, c: c, sub: sub,
		ctx: ctx, frames: make(chan chanFrame), out: wire.NewFrameSender(conn)}
	go cs.read(cancel)
	for {
		f, ok := cs.next()
		if !ok {
			return
		}
		var err error
		switch f.tag {
		case wire.ChanWhole, wire.ChanPart:
			err = cs.operation("Chan.Send", func() error { return cs.send(f) })
		case wire.ChanRecv:
			err = cs.operation("Chan.Recv", cs.recv)
		default:
			err = fault.Errorf(fault.BadRequest, "channel stream: a frame of tag %q where an operation begins", f.tag)
		}
		if err != nil {
			if err != errChanGone {
				cs.out.Send(wire.ChanFault, wire.EncodeRefusal(fault.Refusal(err)))
				cs.drain()
			}
			return
		}
	}
}

// read hands the stream's frames to the operations until the client closes
// it (or breaks the protocol), then cancels the stream's context.
func (cs *chanStream) read(cancel context.CancelFunc) {
	defer cancel()
	defer close(cs.frames)
	r := bufio.NewReaderSize(cs.conn, 64<<10)
	for {
		tag, data, _, err := wire.ReadFrame(r, nil) // each payload its own: the channel keeps it
		if err != nil {
			return
		}
		select {
		case cs.frames <- chanFrame{tag, data}:
		case <-cs.ctx.Done():
			return
		}
	}
}

// drain reads the rest of a message that failed as it came, so that its
// sender, still writing, finds the fault when it ends the message rather
// than a connection reset under its writes.
func (cs *chanStream) drain() {
	for cs.inMessage {
		if _, err := cs.piece(); err != nil {
			return
		}
	}
}

// next is the next frame, false once the client is gone.
func (cs *chanStream) next() (chanFrame, bool) {
	f, ok := <-cs.frames
	return f, ok
}

// operation runs one operation of the stream as its own record, after the
// same checks as its gRPC call.
func (cs *chanStream) operation(name string, run func() error) error {
	s := cs.s
	start := s.metrics.Now()
	op, err := s.ops.Begin(name, cs.who.fields(cs.path))
	if err != nil {
		err = fault.New(fault.Precondition, err.Error())
	} else {
		err = s.permit(cs.who, name, cs.path)
	}
	if err == nil {
		err = run()
	}
	if err == errChanGone {
		op.End(errors.New("the client went away during the operation"))
	} else {
		op.End(err)
	}
	s.metrics.Operation(name, start, err)
	if err == nil && cs.ctx.Err() != nil {
		return errChanGone
	}
	return err
}

// send sends the message whose first frame is first. A message that ends
// within the buffer limit is sent whole; a longer one is streamed to a
// receiver.
func (cs *chanStream) send(first chanFrame) error {
	if cs.sub {
		return fault.Errorf(fault.BadRequest, "%s is a subscription: only the server sends on it", cs.path)
	}
	msg, last := first.data, first.tag == wire.ChanWhole
	cs.inMessage = !last
	for !last && len(msg) <= channel.MaxBuffered {
		f, err := cs.piece()
		if err != nil {
			return err // nothing was sent
		}
		msg, last = append(msg, f.data...), f.tag == wire.ChanLast
	}
	if last {
		if err := cs.c.Send(cs.ctx, msg); err != nil {
			return cs.chanErr(err)
		}
		return cs.reply(wire.ChanOK)
	}
	t, err := cs.c.SendStream(cs.ctx)
	if err != nil {
		return cs.chanErr(err)
	}
	for {
		select {
		case t.Chunks <- msg:
		case <-t.Done():
			return cs.chanErr(cs.c.Result(cs.ctx, t))
		case <-cs.ctx.Done():
			t.Fail(errors.New("the sender went away during the transfer"))
			return errChanGone
		}
		if last {
			break
		}
		f, err := cs.piece()
		if err != nil {
			t.Fail(errors.New("the sender went away during the transfer"))
			return err
		}
		msg, last = f.data, f.tag == wire.ChanLast
	}
	close(t.Chunks)
	if err := cs.c.Result(cs.ctx, t); err != nil {
		return cs.chanErr(err)
	}
	return cs.reply(wire.ChanOK)
}

// piece reads the next frame of a message being sent.
func (cs *chanStream) piece() (chanFrame, error) {
	f, ok := cs.next()
	switch {
	case !ok:
		return f, errChanGone
	case f.tag != wire.ChanPart && f.tag != wire.ChanLast:
		cs.inMessage = false
		return f, fault.Errorf(fault.BadRequest, "channel stream: a frame of tag %q in the middle of a message", f.tag)
	}
	cs.inMessage = f.tag == wire.ChanPart
	return f, nil
}

// recv hands the next message to the client and counts it delivered once
// the client acknowledges it whole; otherwise the message is given back
// (a buffered one) or its transfer fails (a streamed one).
func (cs *chanStream) recv() error {
	m, err := cs.c.Recv(cs.ctx)
	if err != nil {
		return cs.chanErr(err)
	}
	if m.Transfer == nil {
		if cs.out.Send(wire.ChanWhole, m.Data) != nil || !cs.acked() {
			cs.c.Requeue(m) // the receiver did not get it: the next one will
			return errChanGone
		}
		cs.c.Delivered()
		return nil
	}
	t := m.Transfer
	for {
		select {
		case data, ok := <-t.Chunks:
			if !ok {
				if cs.out.Send(wire.ChanLast, nil) != nil || !cs.acked() {
					t.Finish(channel.ErrReceiverGone)
					return errChanGone
				}
				t.Finish(nil)
				cs.c.Delivered()
				return nil
			}
			if cs.out.Send(wire.ChanPart, data) != nil {
				t.Finish(channel.ErrReceiverGone)
				return errChanGone
			}
		case <-t.Failed():
			t.Finish(t.Err())
			return fault.Errorf(fault.Remote, "message not delivered: %v", t.Err())
		case <-cs.ctx.Done():
			t.Finish(channel.ErrReceiverGone)
			return errChanGone
		}
	}
}

// acked reads the client's acknowledgement of a message.
func (cs *chanStream) acked() bool {
	f, ok := cs.next()
	return ok && f.tag == wire.ChanAck
}

func (cs *chanStream) reply(tag byte) error {
	if err := cs.out.Send(tag, nil); err != nil {
		return errChanGone
	}
	return nil
}

// chanErr is chanError, except that an operation the client's departure
// ended has no one to answer.
func (cs *chanStream) chanErr(err error) error {
	if err != nil && cs.ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return errChanGone
	}
	return chanError(err)
}
