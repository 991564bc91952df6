package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/kind"
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
	streamChunkSize = 512 << 10
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
	buf := make([]byte, chunkSize)
	if _, err := io.CopyBuffer(w, struct{ io.Reader }{r}, buf); err != nil {
		w.abort()
		return err
	}
	return w.Close()
}

// Sender returns a writer whose bytes form one message; Close sends the
// end of the message and waits for the channel to accept it.
func (h *ChanHandle) Sender(ctx context.Context) (*MessageWriter, error) {
	if _, _, err := h.api(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	return &MessageWriter{h: h, ctx: ctx, cancel: cancel}, nil
}

// MessageWriter writes one message to a channel.
type MessageWriter struct {
	h      *ChanHandle
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	stream api.Chan_SendClient
	sc     *serverConn
	buf    []byte
	sent   bool // the first chunk (with the path) has gone
	done   bool
	err    error
}

func (w *MessageWriter) open() error {
	if w.stream != nil {
		return nil
	}
	cl, sc, err := w.h.api()
	if err != nil {
		return err
	}
	w.sc = sc
	w.stream, err = cl.Send(w.ctx)
	if err != nil {
		return w.h.c.wrap(w.ctx, sc, err)
	}
	return nil
}

func (w *MessageWriter) flush(last bool) error {
	if err := w.open(); err != nil {
		return err
	}
	chunk := &api.SendChunk{Data: w.buf, Last: last}
	if !w.sent {
		chunk.Path = w.h.path
		w.sent = true
	}
	if err := w.stream.Send(chunk); err != nil {
		if err == io.EOF { // the server ended the call: its status says why
			_, err = w.stream.CloseAndRecv()
		}
		return w.h.c.wrap(w.ctx, w.sc, err)
	}
	w.buf = nil
	return nil
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
		if w.sent {
			size = streamChunkSize
		}
		take := min(len(p), size-len(w.buf))
		w.buf = append(w.buf, p[:take]...)
		p, n = p[take:], n+take
		if len(w.buf) == size && len(p) > 0 {
			if w.err = w.flush(false); w.err != nil {
				return n, w.err
			}
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
	defer w.cancel()
	if w.err != nil {
		return w.err
	}
	if w.err = w.flush(true); w.err != nil {
		return w.err
	}
	if _, err := w.stream.CloseAndRecv(); err != nil {
		w.err = w.h.c.wrap(w.ctx, w.sc, err)
	}
	return w.err
}

// abort drops the message: nothing is sent.
func (w *MessageWriter) abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.cancel()
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
	cl, sc, err := h.api()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, h.c.wrap(ctx, sc, err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	stream, err := cl.Recv(sctx)
	if err == nil {
		err = stream.Send(&api.RecvAck{Path: h.path})
	}
	var first *api.RecvChunk
	if err == nil {
		first, err = stream.Recv()
	}
	if err == nil && !stop() {
		err = ctx.Err() // ended as the message came: it is given back
	}
	if err != nil {
		stop()
		cancel()
		if ctx.Err() != nil {
			return nil, h.c.wrap(ctx, sc, ctx.Err())
		}
		return nil, h.c.wrap(sctx, sc, err)
	}
	return &MessageReader{h: h, ctx: sctx, cancel: cancel, stream: stream, sc: sc, cur: first.GetData(), last: first.GetLast()}, nil
}

// MessageReader reads one message from a channel.
type MessageReader struct {
	h      *ChanHandle
	ctx    context.Context
	cancel context.CancelFunc
	stream api.Chan_RecvClient
	sc     *serverConn
	cur    []byte
	last   bool
	err    error
}

// Read reads the message.
func (r *MessageReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.last {
			// All of it arrived: acknowledge, then report the end.
			if err := r.stream.Send(&api.RecvAck{Ack: true}); err != nil {
				// The stream ended before the acknowledgement went (io.EOF
				// here is no end of the message): the server gives the
				// message back, and its status says why.
				if err == io.EOF {
					if _, err = r.stream.Recv(); err == nil || err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
				}
				r.err = r.h.c.wrap(r.ctx, r.sc, err)
				return 0, r.err
			}
			r.stream.CloseSend()
			if _, err := r.stream.Recv(); err != io.EOF && err != nil {
				r.err = r.h.c.wrap(r.ctx, r.sc, err)
				return 0, r.err
			}
			r.err = io.EOF
			r.cancel()
			return 0, io.EOF
		}
		ch, err := r.stream.Recv()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			} else {
				err = r.h.c.wrap(r.ctx, r.sc, err)
			}
			r.err = err
			return 0, err
		}
		r.cur, r.last = ch.GetData(), ch.GetLast()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close ends the receive; before EOF, the message is given back.
func (r *MessageReader) Close() error {
	r.cancel()
	return nil
}
