package server

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/grpc/status"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/cluster"
	"github.com/circuit-project/circuit/internal/element/channel"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/kind"
)

// subCap bounds the events a subscription holds unread; past it, new
// events are dropped and logged.
const subCap = 4096

// subElement is an @join or @leave subscription: a receive-only channel the
// server feeds with the paths of servers that join or leave.
type subElement struct {
	*channel.Chan
	s *Server
}

// Scrub unregisters the subscription and aborts its receivers.
func (e *subElement) Scrub() {
	e.s.subsMu.Lock()
	delete(e.s.subs, e)
	e.s.subsMu.Unlock()
	e.Chan.Scrub()
}

// subscriptions holds the live subscriptions.
type subscriptions struct {
	subsMu sync.Mutex
	subs   map[*subElement]struct{}
}

// onMember feeds a membership event to the subscriptions, in the order the
// cluster reports events (one at a time).
func (s *Server) onMember(ev cluster.Event) {
	k := kind.Join
	if ev.Type == cluster.Leave {
		k = kind.Leave
		s.hostLost(ev.Member.ID) // workers watched there are lost (expect.go)
	}
	path := []byte("/" + ev.Member.ID.String())
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for sub := range s.subs {
		if sub.Kind() == k && !sub.TrySend(path) {
			s.log.Warn("subscription full; event dropped", "kind", k.String(), "member", ev.Member.ID.String())
		}
	}
}

type chanService struct {
	api.UnimplementedChanServer
	s *Server
}

func chanError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, channel.ErrClosed):
		return fault.New(fault.Closed, err.Error()) // like EOF
	case errors.Is(err, channel.ErrAborted), errors.Is(err, channel.ErrTooLarge):
		return fault.New(fault.Precondition, err.Error())
	case errors.Is(err, channel.ErrReceiverGone):
		return fault.New(fault.Remote, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	if _, ok := status.FromError(err); ok {
		return err // already of a class
	}
	return fault.New(fault.Remote, err.Error())
}

func (s *Server) chanAt(raw string) (*channel.Chan, anchor.Element, error) {
	p, e, err := s.element(raw)
	if err != nil {
		return nil, nil, err
	}
	switch c := e.(type) {
	case *channel.Chan:
		return c, e, nil
	case *subElement:
		return c.Chan, e, nil
	}
	return nil, nil, fault.Errorf(fault.BadRequest, "%s holds a %s, not a channel", p, e.Kind())
}

func toChanStat(c *channel.Chan) *api.ChanStat {
	st := c.Peek()
	return &api.ChanStat{Kind: string(c.Kind()), Cap: int64(st.Cap), Closed: st.Closed, Aborted: st.Aborted,
		NumSend: st.NumSend, NumRecv: st.NumRecv, Pending: int64(c.Pending())}
}

func (v *chanService) Make(_ context.Context, req *api.MakeChanRequest) (*api.ChanStat, error) {
	s := v.s
	p, err := s.localPath(req.GetPath())
	if err != nil {
		return nil, err
	}
	if len(p.Elems) == 0 || p.Recursive {
		return nil, fault.Errorf(fault.BadRequest, "a channel needs an anchor below a server, like /%s/ch, not %s", s.id, p)
	}
	var elem anchor.Element
	var c *channel.Chan
	switch k := kind.Kind(req.GetKind()); k {
	case "", kind.Chan:
		if req.GetCap() < 0 || req.GetCap() > 1<<20 {
			return nil, fault.Errorf(fault.BadRequest, "channel capacity %d: want 0 to 1048576", req.GetCap())
		}
		c = channel.New(kind.Chan, int(req.GetCap()))
		elem = c
	case kind.Join, kind.Leave:
		c = channel.New(k, subCap)
		elem = &subElement{Chan: c, s: s}
	default:
		return nil, fault.Errorf(fault.BadRequest, "unknown channel kind %q: want chan, @join or @leave", k)
	}
	if sub, ok := elem.(*subElement); ok {
		// Registered before it is attached, so that it misses nothing that
		// happens once the call returns.
		s.subsMu.Lock()
		if s.subs == nil {
			s.subs = map[*subElement]struct{}{}
		}
		s.subs[sub] = struct{}{}
		s.subsMu.Unlock()
	}
	if err := s.tree.Set(p.Elems, elem); err != nil {
		if sub, ok := elem.(*subElement); ok {
			sub.Scrub()
		}
		if anchor.IsOccupied(err) {
			return nil, fault.New(fault.Exists, err.Error())
		}
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	return toChanStat(c), nil
}

func (v *chanService) Peek(_ context.Context, req *api.PathRequest) (*api.ChanStat, error) {
	c, _, err := v.s.chanAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	return toChanStat(c), nil
}

func (v *chanService) Close(_ context.Context, req *api.PathRequest) (*api.CloseReply, error) {
	c, e, err := v.s.chanAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	if _, ok := e.(*subElement); ok {
		return nil, fault.Errorf(fault.BadRequest, "%s is a %s subscription; scrub it instead of closing it", req.GetPath(), e.Kind())
	}
	return &api.CloseReply{}, chanError(c.Close())
}

// Send receives one message from a client and sends it on the channel.
func (v *chanService) Send(stream api.Chan_SendServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	c, e, err := v.s.chanAt(first.GetPath())
	if err != nil {
		return err
	}
	if _, ok := e.(*subElement); ok {
		return fault.Errorf(fault.BadRequest, "%s is a %s subscription: only the server sends on it", first.GetPath(), e.Kind())
	}
	// Gather up to the buffer limit: a message that ends within it is sent
	// whole; a longer one is streamed to a receiver.
	msg := append([]byte(nil), first.GetData()...)
	last := first.GetLast()
	for !last && len(msg) <= channel.MaxBuffered {
		ch, err := stream.Recv()
		if err != nil {
			return err // the sender went away: nothing was sent
		}
		msg = append(msg, ch.GetData()...)
		last = ch.GetLast()
	}
	if last && len(msg) <= channel.MaxBuffered {
		if err := c.Send(ctx, msg); err != nil {
			return chanError(err)
		}
		return stream.SendAndClose(&api.SendReply{})
	}
	t, err := c.SendStream(ctx)
	if err != nil {
		return chanError(err)
	}
	pump := func(data []byte) bool {
		select {
		case t.Chunks <- data:
			return true
		case <-t.Done():
			return false
		case <-ctx.Done():
			t.Fail(ctx.Err())
			return false
		}
	}
	if !pump(msg) {
		return chanError(c.Result(ctx, t))
	}
	for !last {
		ch, err := stream.Recv()
		if err != nil {
			t.Fail(errors.New("the sender went away during the transfer"))
			return err
		}
		if !pump(ch.GetData()) {
			return chanError(c.Result(ctx, t))
		}
		last = ch.GetLast()
	}
	close(t.Chunks)
	if err := c.Result(ctx, t); err != nil {
		return chanError(err)
	}
	return stream.SendAndClose(&api.SendReply{})
}

// Recv hands one message to a client and counts it delivered only when the
// client acknowledges it whole.
func (v *chanService) Recv(stream api.Chan_RecvServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	c, _, err := v.s.chanAt(first.GetPath())
	if err != nil {
		return err
	}
	m, err := c.Recv(ctx)
	if err != nil {
		return chanError(err)
	}
	acked := func() bool {
		ack, err := stream.Recv()
		return err == nil && ack.GetAck()
	}
	if m.Transfer == nil {
		if err := stream.Send(&api.RecvChunk{Data: m.Data, Last: true}); err != nil || !acked() {
			c.Requeue(m) // the receiver did not get it: the next one will
			return fault.New(fault.Remote, "receiver went away; message put back")
		}
		c.Delivered()
		return nil
	}
	t := m.Transfer
	for {
		select {
		case data, ok := <-t.Chunks:
			if !ok {
				if err := stream.Send(&api.RecvChunk{Last: true}); err != nil || !acked() {
					t.Finish(channel.ErrReceiverGone)
					return fault.New(fault.Remote, "receiver went away")
				}
				t.Finish(nil)
				c.Delivered()
				return nil
			}
			if err := stream.Send(&api.RecvChunk{Data: data}); err != nil {
				t.Finish(channel.ErrReceiverGone)
				return err
			}
		case <-t.Failed():
			t.Finish(t.Err())
			return fault.Errorf(fault.Remote, "message not delivered: %v", t.Err())
		case <-ctx.Done():
			t.Finish(channel.ErrReceiverGone)
			return ctx.Err()
		}
	}
}

func peekChan(_ context.Context, _ *Server, e anchor.Element) (*api.PeekReply, error) {
	c, ok := e.(*channel.Chan)
	if !ok {
		return nil, wrongElement(e)
	}
	return &api.PeekReply{Kind: string(c.Kind()), State: &api.PeekReply_Chan{Chan: toChanStat(c)}}, nil
}

func peekSubscription(_ context.Context, _ *Server, e anchor.Element) (*api.PeekReply, error) {
	sub, ok := e.(*subElement)
	if !ok {
		return nil, wrongElement(e)
	}
	return &api.PeekReply{Kind: string(sub.Kind()), State: &api.PeekReply_Subscription{Subscription: toChanStat(sub.Chan)}}, nil
}
