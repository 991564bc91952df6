package client

import (
	"context"
	"io"
	"strings"
)

// Chan is a channel element in the seeds' style: methods panic with
// *HostLostError or *DialinLostError when the connection is lost.
type Chan interface {
	// Send returns a writer for one message; its Close blocks until the
	// channel accepts the message, and returns why it did not.
	Send() (io.WriteCloser, error)
	// Recv blocks until a message is available and returns a reader of it.
	Recv() (io.ReadCloser, error)
	// Close closes the channel; buffered messages still drain.
	Close() error
	// Stat describes the channel.
	Stat() ChanStat
	// Scrub aborts the channel and removes it.
	Scrub()
}

// Subscription is an @join or @leave element: a receive-only channel of
// server paths.
type Subscription interface {
	// Consume blocks until the next server joins (or leaves) and returns
	// its anchor path; false once the subscription is scrubbed.
	Consume() (string, bool)
	// Recv is Consume as a reader of one message.
	Recv() (io.ReadCloser, error)
	// Peek describes the subscription.
	Peek() SubscriptionStat
	// Scrub removes the subscription.
	Scrub()
}

type seedChan struct{ h *ChanHandle }

// Chan returns the seeds'-style view of the channel.
func (h *ChanHandle) Chan() Chan { return seedChan{h} }

// Subscription returns the seeds'-style view of a subscription.
func (h *ChanHandle) Subscription() Subscription { return seedChan{h} }

func (c seedChan) Send() (io.WriteCloser, error) {
	w, err := c.h.Sender(context.Background())
	if lost(err) {
		panic(err)
	}
	if err != nil {
		return nil, err
	}
	return panicOnLost{w}, nil
}

// panicOnLost keeps the seeds' convention on a message writer's errors.
type panicOnLost struct{ w *MessageWriter }

func (p panicOnLost) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if lost(err) {
		panic(err)
	}
	return n, err
}

func (p panicOnLost) Close() error {
	err := p.w.Close()
	if lost(err) {
		panic(err)
	}
	return err
}

func (c seedChan) Recv() (io.ReadCloser, error) {
	r, err := c.h.Recv(context.Background())
	if lost(err) {
		panic(err)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (c seedChan) Close() error {
	err := c.h.Close(context.Background())
	if lost(err) {
		panic(err)
	}
	return err
}

func (c seedChan) Stat() ChanStat {
	st, err := c.h.Peek(context.Background())
	if lost(err) {
		panic(err)
	}
	if err != nil {
		return ChanStat{Aborted: true}
	}
	return st
}

func (c seedChan) Peek() SubscriptionStat {
	st, err := c.h.PeekSubscription(context.Background())
	if lost(err) {
		panic(err)
	}
	if err != nil {
		return SubscriptionStat{Aborted: true}
	}
	return st
}

func (c seedChan) Consume() (string, bool) {
	r, err := c.Recv()
	if err != nil {
		return "", false
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func (c seedChan) Scrub() {
	if err := c.h.c.ScrubAt(context.Background(), c.h.path); lost(err) {
		panic(err)
	}
}
