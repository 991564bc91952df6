package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/kind"
	"github.com/circuit-project/circuit/internal/wire"
)

// ChanStat describes a channel, with the seed's field names.
type ChanStat struct {
	Cap     int
	Closed  bool
	Aborted bool
	NumSend int64 // messages accepted
	NumRecv int64 // messages delivered whole
}

// SubscriptionStat describes an @join or @leave subscription.
type SubscriptionStat struct {
	Kind      string // "@join" or "@leave"
	Pending   int    // events not yet received
	Delivered int64
	Aborted   bool
}

// chunkSize is the size of the first piece of a message; a message that
// fits in it may wait in a channel's buffer. A longer message is streamed,
// and its later pieces are bigger, for throughput.
const (
	chunkSize       = 32 << 10
	streamChunkSize = 1 << 20
)

// ChanHandle is a channel (or subscription) element, in the context style.
type ChanHandle struct {
	c    *Client
	path string
}

// ChanAt returns a handle on the channel at path.
func (c *Client) ChanAt(path string) *ChanHandle { return &ChanHandle{c: c, path: path} }

// MakeChanAt creates a channel of capacity n at path.
func (c *Client) MakeChanAt(ctx context.Context, path string, n int) (*ChanHandle, error) {
	return c.makeChan(ctx, path, string(kind.Chan), n)
}

// MakeSubscriptionAt creates an @join or @leave subscription at path.
func (c *Client) MakeSubscriptionAt(ctx context.Context, path, kind string) (*ChanHandle, error) {
	return c.makeChan(ctx, path, kind, 0)
}

func (c *Client) makeChan(ctx context.Context, path, kind string, n int) (*ChanHandle, error) {
	sc, err := c.serverOf(path)
	if err != nil {
		return nil, err
	}
	if _, err := api.NewChanClient(sc.cc).Make(ctx, &api.MakeChanRequest{Path: path, Cap: int64(n), Kind: kind}); err != nil {
		return nil, c.wrap(ctx, sc, err)
	}
	return &ChanHandle{c: c, path: path}, nil
}

// Path is the anchor of the channel.
func (h *ChanHandle) Path() string { return h.path }

func (h *ChanHandle) api() (api.ChanClient, *serverConn, error) {
	sc, err := h.c.serverOf(h.path)
	if err != nil {
		return nil, nil, err
	}
	return api.NewChanClient(sc.cc), sc, nil
}

// Peek describes the channel.
func (h *ChanHandle) Peek(ctx context.Context) (ChanStat, error) {
	st, err := h.peek(ctx)
	if err != nil {
		return ChanStat{}, err
	}
	return fromChanStat(st), nil
}

func fromChanStat(st *api.ChanStat) ChanStat {
	return ChanStat{Cap: int(st.GetCap()), Closed: st.GetClosed(), Aborted: st.GetAborted(), NumSend: st.GetNumSend(), NumRecv: st.GetNumRecv()}
}

func chanState(r *api.PeekReply) any {
	if st := r.GetChan(); st != nil {
		return fromChanStat(st)
	}
	return nil
}

func chanHandle(c *Client, path string) any { return c.ChanAt(path).Chan() }

// PeekSubscription describes a subscription.
func (h *ChanHandle) PeekSubscription(ctx context.Context) (SubscriptionStat, error) {
	st, err := h.peek(ctx)
	if err != nil {
		return SubscriptionStat{}, err
	}
	return fromSubscriptionStat(st), nil
}

func fromSubscriptionStat(st *api.ChanStat) SubscriptionStat {
	return SubscriptionStat{Kind: st.GetKind(), Pending: int(st.GetPending()), Delivered: st.GetNumRecv(), Aborted: st.GetAborted()}
}

func subscriptionState(r *api.PeekReply) any {
	if st := r.GetSubscription(); st != nil {
		return fromSubscriptionStat(st)
	}
	return nil
}

func subscriptionHandle(c *Client, path string) any { return c.ChanAt(path).Subscription() }

func (h *ChanHandle) peek(ctx context.Context) (*api.ChanStat, error) {
	cl, sc, err := h.api()
	if err != nil {
		return nil, err
	}
	st, err := cl.Peek(ctx, &api.PathRequest{Path: h.path})
	if err != nil {
		return nil, h.c.wrap(ctx, sc, err)
	}
	return st, nil
}

// Close closes the channel; buffered messages still drain.
func (h *ChanHandle) Close(ctx context.Context) error {
	cl, sc, err := h.api()
	if err != nil {
		return err
	}
	_, err = cl.Close(ctx, &api.PathRequest{Path: h.path})
	return h.c.wrap(ctx, sc, err)
}

// Send sends everything r yields as one message, and returns once the
// channel accepted it (into its buffer, or by a receiver).
func (h *ChanHandle) Send(ctx context.Context, r io.Reader) error {
	w, err := h.Sender(ctx)
	if err != nil {
		return err
	}
	buf := copyBuffers.Get().(*[]byte)
	_, err = io.CopyBuffer(w, struct{ io.Reader }{r}, *buf)
	copyBuffers.Put(buf)
	if err != nil {
		w.abort()
		return err
	}
	return w.Close()
}

// copyBuffers are Send's buffers, which a program sending many messages
// would otherwise allocate for each.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// Sender returns a writer whose bytes form one message; Close sends the
// end of the message and waits for the channel to accept it.
func (h *ChanHandle) Sender(ctx context.Context) (*MessageWriter, error) {
	if _, _, err := h.api(); err != nil {
		return nil, err
	}
	return &MessageWriter{h: h, ctx: ctx}, nil
}

// MessageWriter writes one message to a channel. The first 32 KiB wait in
// the writer: a message no longer than that goes as one frame, on a
// channel stream taken at Close. A longer one is streamed as it is written.
type MessageWriter struct {
	h   *ChanHandle
	ctx context.Context

	mu   sync.Mutex
	s    *chanStream // once the message began to go
	stop func() bool // ends ctx's hold on s
	buf  []byte
	done bool
	err  error
}

// begin takes a channel stream for the message, which ctx ending breaks.
func (w *MessageWriter) begin() error {
	if w.s != nil {
		return nil
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	s, err := w.h.c.chanStream(w.ctx, w.h.path)
	if err != nil {
		return err
	}
	w.s, w.stop = s, context.AfterFunc(w.ctx, func() { s.conn.Close() })
	return nil
}

// fail ends the message with err; nothing of it is sent.
func (w *MessageWriter) fail(err error) error {
	if w.s != nil {
		w.stop()
		err = w.s.fail(w.ctx, err)
		w.s = nil
	}
	w.err = err
	return err
}

// Write adds p to the message.
func (w *MessageWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, fmt.Errorf("send %s: %w", w.h.path, errors.New("message already sent"))
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		size := chunkSize
		if w.s != nil {
			size = streamChunkSize
		}
		take := min(len(p), size-len(w.buf))
		w.buf = append(w.buf, p[:take]...)
		p, n = p[take:], n+take
		if len(w.buf) == size && len(p) > 0 {
			if err := w.begin(); err != nil {
				return n, w.fail(err)
			}
			if err := w.s.send(wire.ChanPart, w.buf); err != nil {
				return n, w.fail(err)
			}
			w.buf = w.buf[:0]
		}
	}
	return n, nil
}

// Close ends the message and waits until the channel accepted it.
func (w *MessageWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return w.err
	}
	w.done = true
	if w.err != nil {
		return w.err
	}
	tag := wire.ChanLast
	if w.s == nil {
		tag = wire.ChanWhole
	}
	if err := w.begin(); err != nil {
		return w.fail(err)
	}
	if err := w.s.send(tag, w.buf); err != nil {
		return w.fail(err)
	}
	if err := w.s.expect(); err != nil {
		return w.fail(err)
	}
	if !w.stop() { // ctx ended as the answer came: the stream is closed
		w.s = nil
		return nil
	}
	w.s.release()
	w.s = nil
	return nil
}

// abort drops the message: nothing is sent.
func (w *MessageWriter) abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.s != nil {
		w.stop()
		w.s.conn.Close()
		w.s = nil
	}
}

// Recv waits for the next message and returns a reader of it. Read it to
// EOF to receive it; EOF comes only after the whole message arrived and was
// acknowledged. Closing the reader before EOF gives the message back.
//
// ctx bounds the wait for a message, not its delivery: once a message has
// begun to arrive, ctx ending no longer cuts it short, since a receive cut
// after its acknowledgement left would have taken the message while saying
// it failed. A receive that ctx ended took nothing from the channel.
func (h *ChanHandle) Recv(ctx context.Context) (*MessageReader, error) {
	if _, _, err := h.api(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := h.c.chanStream(ctx, h.path)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	var tag byte
	var first []byte
	err = s.send(wire.ChanRecv, nil)
	if err == nil {
		tag, first, err = s.read()
	}
	if err == nil && !stop() {
		err = ctx.Err() // ended as the message came: it is given back
	}
	if err == nil && tag != wire.ChanWhole && tag != wire.ChanPart && tag != wire.ChanLast {
		err = fault.Errorf(fault.Remote, "channel stream: the server answered a receive with a frame of tag %q", tag)
	}
	if err != nil {
		stop()
		return nil, s.fail(ctx, err)
	}
	return &MessageReader{h: h, ctx: context.WithoutCancel(ctx), s: s, cur: first, last: tag != wire.ChanPart}, nil
}

// MessageReader reads one message from a channel.
type MessageReader struct {
	h    *ChanHandle
	ctx  context.Context
	s    *chanStream // until the message ends
	cur  []byte
	last bool
	err  error
}

// Read reads the message.
func (r *MessageReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.last {
			// All of it arrived: acknowledge, and report the end once the
			// acknowledgement is on its way (package wire says why that
			// is enough).
			if err := r.s.send(wire.ChanAck, nil); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF // no end of the message
				}
				r.err = r.s.fail(r.ctx, err)
				r.s = nil
				return 0, r.err
			}
			r.s.release()
			r.s, r.err = nil, io.EOF
			return 0, io.EOF
		}
		tag, data, err := r.s.read()
		if err == nil && tag != wire.ChanPart && tag != wire.ChanLast {
			err = fault.Errorf(fault.Remote, "channel stream: a frame of tag %q in the middle of a message", tag)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			r.err = r.s.fail(r.ctx, err)
			r.s = nil
			return 0, r.err
		}
		r.cur, r.last = data, tag == wire.ChanLast
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close ends the receive; before EOF, the message is given back.
func (r *MessageReader) Close() error {
	if r.s != nil {
		r.s.conn.Close()
		r.s = nil
		if r.err == nil {
			r.err = fmt.Errorf("recv %s: %w", r.h.path, net.ErrClosed)
		}
	}
	return nil
}
