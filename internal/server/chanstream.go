package server

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
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
//
// One goroutine reads the stream and does what needs no wait itself: a
// send that a waiting receiver or the buffer takes, a receive of a message
// that is there, an acknowledgement. An operation that must wait, and a
// streamed message, runs in a goroutine of its own while the reader goes
// on reading, so that it sees the client go and ends the operation. A
// message costs no hand-over between goroutines where none must wait.

// chanFrame is a frame read from a channel stream; its payload is its own.
type chanFrame struct {
	tag  byte
	data []byte
}

// The states of a channel stream, between operations and within one.
const (
	chanIdle     = iota
	chanBusy     // an operation runs in its goroutine
	chanAwaitAck // a message went to the client, not yet acknowledged
	chanFaulted  // an operation failed: the client ends the stream
)

// chanStream serves one channel stream.
type chanStream struct {
	s    *Server
	conn net.Conn
	who  caller
	path string
	c    *channel.Chan
	sub  bool // a subscription: only the server sends on it

	ctx context.Context // ends when the client is gone
	wg  sync.WaitGroup  // the operations' goroutines

	outMu sync.Mutex
	out   *wire.FrameSender

	mu      sync.Mutex
	state   int
	pending channel.Message // chanAwaitAck: the message
	pendOp  chanOp          // and its operation

	// pieces carries a streamed message's frames to its send's goroutine,
	// which closes gone when it ends.
	pieces chan chanFrame
	gone   chan struct{}
}

// chanOp is one operation of a stream, begun and recorded.
type chanOp struct {
	name  string
	op    *oplog.Op
	start time.Time
}

// errChanGone ends an operation whose client went away: there is no one
// to tell.
var errChanGone = errors.New("the client went away")

// serveChanStream answers a channel stream's header and serves its
// operations until the client closes it (after a failed operation, it
// does), or the server stops.
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
	cs := &chanStream{s: s, conn: conn, who: who, path: path, c: c, sub: sub, ctx: ctx, out: wire.NewFrameSender(conn)}
	defer func() {
		cancel()
		conn.Close() // a goroutine blocked writing to it ends too
		cs.wg.Wait()
		cs.left()
	}()
	r := bufio.NewReaderSize(conn, 64<<10)
	inMessage := false // the reader is passing a streamed message's pieces
	for {
		tag, data, _, err := wire.ReadFrame(r, nil) // each payload its own: the channel keeps it
		if err != nil {
			return
		}
		f := chanFrame{tag, data}
		if inMessage {
			if tag != wire.ChanPart && tag != wire.ChanLast {
				cs.protocol("a frame of tag %q in the middle of a message", tag)
				return
			}
			select {
			case cs.pieces <- f:
			case <-cs.gone: // it failed: the rest is dropped
			}
			inMessage = tag == wire.ChanPart
			continue
		}
		switch tag {
		case wire.ChanWhole:
			cs.sendWhole(data)
		case wire.ChanPart:
			cs.sendStreamed(f)
			inMessage = true
		case wire.ChanLast:
			cs.protocol("a last piece of no message")
		case wire.ChanRecv:
			cs.recv()
		case wire.ChanAck:
			cs.ack()
		default:
			cs.protocol("a frame of tag %q", tag)
		}
		if cs.is(chanFaulted) && !inMessage {
			return // the client was told; nothing more comes that counts
		}
	}
}

func (cs *chanStream) is(state int) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.state == state
}

// reply sends a frame to the client, from the reader or an operation's
// goroutine.
func (cs *chanStream) reply(tag byte, p []byte) error {
	cs.outMu.Lock()
	defer cs.outMu.Unlock()
	return cs.out.Send(tag, p)
}

// replyPieces sends data as ChanPart frames of at most wire.MaxFrame (a
// sender's first pieces come gathered in one).
func (cs *chanStream) replyPieces(data []byte) error {
	for len(data) > 0 {
		n := min(len(data), wire.MaxFrame)
		if err := cs.reply(wire.ChanPart, data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// begin starts an operation if the stream is between operations, after
// the same checks as its gRPC call; the stream is then busy. It reports
// false when the operation failed at once, told and recorded.
func (cs *chanStream) begin(name string) (chanOp, bool) {
	s := cs.s
	o := chanOp{name: name, start: s.metrics.Now()}
	cs.mu.Lock()
	state := cs.state
	if state == chanIdle {
		cs.state = chanBusy
	}
	cs.mu.Unlock()
	if state != chanIdle {
		cs.protocol("%s while another operation is under way", name)
		return o, false
	}
	op, err := s.ops.Begin(name, cs.who.fields(cs.path))
	o.op = op
	if err != nil {
		err = fault.New(fault.Precondition, err.Error())
	} else {
		err = s.permit(cs.who, name, cs.path)
	}
	if err != nil {
		cs.end(o, err)
		return o, false
	}
	return o, true
}

// end ends an operation but a delivered receive (ack ends that): the
// stream is idle again (or faulted), its record and metrics get err, and
// the client its answer: OK for a send, the fault for a failure. The state changes before the answer goes, since the client may
// begin the next operation as soon as it has it.
func (cs *chanStream) end(o chanOp, err error) {
	if err != nil && cs.ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = errChanGone
	}
	cs.mu.Lock()
	if err == nil {
		cs.state = chanIdle
	} else {
		cs.state = chanFaulted
	}
	cs.mu.Unlock()
	cs.record(o, err)
	switch {
	case err == nil && o.name == "Chan.Send":
		cs.reply(wire.ChanOK, nil)
	case err != nil && err != errChanGone:
		cs.reply(wire.ChanFault, wire.EncodeRefusal(fault.Refusal(err)))
	}
}

func (cs *chanStream) record(o chanOp, err error) {
	if o.op == nil {
		return
	}
	if err == errChanGone {
		o.op.End(errors.New("the client went away during the operation"))
	} else {
		o.op.End(err)
	}
	cs.s.metrics.Operation(o.name, o.start, err)
}

// protocol fails the stream for a frame out of place.
func (cs *chanStream) protocol(format string, args ...any) {
	cs.mu.Lock()
	cs.state = chanFaulted
	cs.mu.Unlock()
	err := fault.Errorf(fault.BadRequest, "channel stream: "+format, args...)
	cs.reply(wire.ChanFault, wire.EncodeRefusal(fault.Refusal(err)))
}

// async runs the rest of an operation that must wait in a goroutine of
// its own.
func (cs *chanStream) async(f func()) {
	cs.wg.Add(1)
	go func() {
		defer cs.wg.Done()
		f()
	}()
}

// refuseSub refuses a send on a subscription.
func (cs *chanStream) refuseSub() error {
	if cs.sub {
		return fault.Errorf(fault.BadRequest, "%s is a subscription: only the server sends on it", cs.path)
	}
	return nil
}

// sendWhole sends a message that came whole, at once if the channel takes
// it without a wait.
func (cs *chanStream) sendWhole(msg []byte) {
	o, ok := cs.begin("Chan.Send")
	if !ok {
		return
	}
	if err := cs.refuseSub(); err != nil {
		cs.end(o, err)
		return
	}
	if sent, err := cs.c.Offer(msg); sent || err != nil {
		cs.end(o, chanError(err))
		return
	}
	cs.async(func() { cs.end(o, chanError(cs.c.Send(cs.ctx, msg))) })
}

// sendStreamed sends the message whose first piece is first, in its own
// goroutine, to which the reader passes the rest. A message that ends
// within the buffer limit is sent whole; a longer one is streamed to a
// receiver.
func (cs *chanStream) sendStreamed(first chanFrame) {
	cs.pieces, cs.gone = make(chan chanFrame), make(chan struct{})
	pieces, gone := cs.pieces, cs.gone
	o, ok := cs.begin("Chan.Send")
	if !ok {
		close(gone)
		return
	}
	if err := cs.refuseSub(); err != nil {
		close(gone)
		cs.end(o, err)
		return
	}
	cs.async(func() {
		err := cs.stream(first, pieces)
		close(gone)
		cs.end(o, err)
	})
}

// stream is the work of sendStreamed.
func (cs *chanStream) stream(first chanFrame, pieces <-chan chanFrame) error {
	next := func() (chanFrame, error) {
		select {
		case f := <-pieces:
			return f, nil
		case <-cs.ctx.Done():
			return chanFrame{}, errChanGone
		}
	}
	msg, last := first.data, false
	for !last && len(msg) <= channel.MaxBuffered {
		f, err := next()
		if err != nil {
			return err // nothing was sent
		}
		msg, last = append(msg, f.data...), f.tag == wire.ChanLast
	}
	if last && len(msg) <= channel.MaxBuffered {
		return chanError(cs.c.Send(cs.ctx, msg))
	}
	t, err := cs.c.SendStream(cs.ctx)
	if err != nil {
		return chanError(err)
	}
	for {
		select {
		case t.Chunks <- msg:
		case <-t.Done():
			return chanError(cs.c.Result(cs.ctx, t))
		case <-cs.ctx.Done():
			t.Fail(errors.New("the sender went away during the transfer"))
			return errChanGone
		}
		if last {
			break
		}
		f, err := next()
		if err != nil {
			t.Fail(errors.New("the sender went away during the transfer"))
			return err
		}
		msg, last = f.data, f.tag == wire.ChanLast
	}
	close(t.Chunks)
	return chanError(cs.c.Result(cs.ctx, t))
}

// recv hands the next message to the client, at once if there is one, and
// counts it delivered once the client acknowledges it whole (ack);
// otherwise the message is given back (a buffered one) or its transfer
// fails (a streamed one).
func (cs *chanStream) recv() {
	o, ok := cs.begin("Chan.Recv")
	if !ok {
		return
	}
	if m, got, err := cs.c.Poll(); err != nil {
		cs.end(o, chanError(err))
		return
	} else if got && m.Transfer == nil {
		cs.deliver(o, m)
		return
	} else if got {
		cs.async(func() { cs.transfer(o, m) })
		return
	}
	cs.async(func() {
		m, err := cs.c.Recv(cs.ctx)
		switch {
		case err != nil:
			cs.end(o, chanError(err))
		case m.Transfer == nil:
			cs.deliver(o, m)
		default:
			cs.transfer(o, m)
		}
	})
}

// deliver sends a buffered message to the client, to await its
// acknowledgement.
func (cs *chanStream) deliver(o chanOp, m channel.Message) {
	cs.awaitAck(o, m)
	if cs.reply(wire.ChanWhole, m.Data) != nil {
		cs.conn.Close() // the reader ends, and gives the message back
	}
}

// awaitAck makes m the message the client is to acknowledge.
func (cs *chanStream) awaitAck(o chanOp, m channel.Message) {
	cs.mu.Lock()
	cs.state, cs.pending, cs.pendOp = chanAwaitAck, m, o
	cs.mu.Unlock()
}

// transfer streams a large message to the client.
func (cs *chanStream) transfer(o chanOp, m channel.Message) {
	t := m.Transfer
	for {
		select {
		case data, ok := <-t.Chunks:
			if !ok {
				cs.awaitAck(o, m)
				if cs.reply(wire.ChanLast, nil) != nil {
					cs.conn.Close()
				}
				return
			}
			if cs.replyPieces(data) != nil {
				t.Finish(channel.ErrReceiverGone)
				cs.end(o, errChanGone)
				cs.conn.Close()
				return
			}
		case <-t.Failed():
			t.Finish(t.Err())
			cs.end(o, fault.Errorf(fault.Remote, "message not delivered: %v", t.Err()))
			return
		case <-cs.ctx.Done():
			t.Finish(channel.ErrReceiverGone)
			cs.end(o, errChanGone)
			return
		}
	}
}

// ack counts the message the client acknowledged delivered.
func (cs *chanStream) ack() {
	m, o, ok := cs.takePending(chanIdle)
	if !ok {
		cs.protocol("an acknowledgement of no message")
		return
	}
	if m.Transfer != nil {
		m.Transfer.Finish(nil)
	}
	cs.c.Delivered()
	cs.record(o, nil)
}

// takePending takes the message awaiting its acknowledgement, if any, and
// puts the stream in state.
func (cs *chanStream) takePending(state int) (channel.Message, chanOp, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.state != chanAwaitAck {
		return channel.Message{}, chanOp{}, false
	}
	m, o := cs.pending, cs.pendOp
	cs.state, cs.pending, cs.pendOp = state, channel.Message{}, chanOp{}
	return m, o, true
}

// left settles a message the client had and never acknowledged, once it
// is gone: a buffered one goes back at the head of the channel for the
// next receiver; a streamed one fails its sender.
func (cs *chanStream) left() {
	m, o, ok := cs.takePending(chanFaulted)
	if !ok {
		return
	}
	if m.Transfer != nil {
		m.Transfer.Finish(channel.ErrReceiverGone)
	} else {
		cs.c.Requeue(m)
	}
	cs.record(o, errChanGone)
}
