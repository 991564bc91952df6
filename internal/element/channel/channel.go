package channel

import (
	"context"
	"errors"
	"sync"

	"github.com/circuit-project/circuit/internal/kind"
)

// MaxBuffered is the largest message that may wait in a buffer.
const MaxBuffered = 32 << 10

// Errors of channel operations.
var (
	ErrClosed       = errors.New("channel closed")
	ErrAborted      = errors.New("channel aborted (scrubbed)")
	ErrTooLarge     = errors.New("a message larger than 32 KiB cannot wait in the buffer: it needs a receiver waiting on an empty channel, or an unbuffered channel")
	ErrReceiverGone = errors.New("the receiver went away during the transfer; the message was not delivered")
)

// Stat is what peek shows.
type Stat struct {
	Cap     int
	Closed  bool
	Aborted bool
	NumSend int64
	NumRecv int64
}

// Transfer is a large message streamed from its sender to its receiver.
// The sender writes chunks into Chunks and closes it after the last, or
// calls Fail; the receiver reads Chunks and reports the outcome with Finish.
type Transfer struct {
	Chunks chan []byte

	failed  chan struct{}
	sendErr error
	sOnce   sync.Once

	done   chan struct{}
	result error
	rOnce  sync.Once
}

func newTransfer() *Transfer {
	return &Transfer{Chunks: make(chan []byte, 4), failed: make(chan struct{}), done: make(chan struct{})}
}

// Fail marks the transfer broken by its sender.
func (t *Transfer) Fail(err error) {
	t.sOnce.Do(func() { t.sendErr = err; close(t.failed) })
}

// Failed is closed when the sender broke the transfer; Err says why.
func (t *Transfer) Failed() <-chan struct{} { return t.failed }

// Err is why the sender broke the transfer.
func (t *Transfer) Err() error { return t.sendErr }

// Finish reports the receiver's outcome (nil: delivered whole).
func (t *Transfer) Finish(err error) {
	t.rOnce.Do(func() { t.result = err; close(t.done) })
}

// Done is closed when the receiver has finished; Result says how.
func (t *Transfer) Done() <-chan struct{} { return t.done }

// Result is the receiver's outcome, once Done is closed.
func (t *Transfer) Result() error { return t.result }

// Message is what a receiver gets: Data, or a Transfer for a large one.
type Message struct {
	Data     []byte
	Transfer *Transfer
}

type sender struct {
	msg  Message
	done chan error
}

type receiver struct {
	got chan Message
	err chan error
}

// Chan is a channel element. Its zero value is not usable; use New.
type Chan struct {
	kind kind.Kind

	mu        sync.Mutex
	cap       int
	buf       []Message
	closed    bool
	aborted   bool
	numSend   int64
	numRecv   int64
	senders   []*sender
	receivers []*receiver
}

// New makes a channel of the given kind (kind.Chan, kind.Join, kind.Leave) and
// capacity.
func New(k kind.Kind, capacity int) *Chan { return &Chan{kind: k, cap: capacity} }

// Kind is the element kind.
func (c *Chan) Kind() kind.Kind { return c.kind }

// Peek describes the channel.
func (c *Chan) Peek() Stat {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stat{Cap: c.cap, Closed: c.closed, Aborted: c.aborted, NumSend: c.numSend, NumRecv: c.numRecv}
}

// Pending is the number of buffered messages.
func (c *Chan) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

func (c *Chan) state() error {
	switch {
	case c.aborted:
		return ErrAborted
	case c.closed:
		return ErrClosed
	}
	return nil
}

// handOff gives m to the first waiting receiver, if any. Called locked. A
// receiver that gives up removes itself under the lock and then looks for
// a message handed to it just before, so no message is lost.
func (c *Chan) handOff(m Message) bool {
	if len(c.receivers) == 0 {
		return false
	}
	r := c.receivers[0]
	c.receivers = c.receivers[1:]
	r.got <- m // buffered: never blocks
	return true
}

// Send sends a message of at most MaxBuffered bytes, blocking as a Go send
// does. If ctx ends first, nothing was sent.
func (c *Chan) Send(ctx context.Context, data []byte) error {
	if len(data) > MaxBuffered {
		return ErrTooLarge
	}
	return c.send(ctx, Message{Data: data})
}

// TrySend sends without blocking; it reports whether the message was
// accepted.
func (c *Chan) TrySend(data []byte) bool {
	ok, _ := c.Offer(data)
	return ok
}

func (c *Chan) send(ctx context.Context, m Message) error {
	c.mu.Lock()
	if err := c.state(); err != nil {
		c.mu.Unlock()
		return err
	}
	if len(c.buf) == 0 && c.handOff(m) {
		if m.Transfer == nil {
			c.numSend++
		}
		c.mu.Unlock()
		return nil
	}
	if m.Transfer == nil && len(c.buf) < c.cap {
		c.buf = append(c.buf, m)
		c.numSend++
		c.mu.Unlock()
		return nil
	}
	if m.Transfer != nil && c.cap > 0 {
		c.mu.Unlock()
		return ErrTooLarge
	}
	s := &sender{msg: m, done: make(chan error, 1)}
	c.senders = append(c.senders, s)
	c.mu.Unlock()
	select {
	case err := <-s.done:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, w := range c.senders {
			if w == s {
				c.senders = append(c.senders[:i], c.senders[i+1:]...)
				return ctx.Err()
			}
		}
		return <-s.done // taken meanwhile
	}
}

// SendStream starts sending a large message: it returns a Transfer once a
// receiver has it (or, on an unbuffered channel, after waiting for one).
// The caller then writes the chunks, closes Chunks, and waits for Result.
func (c *Chan) SendStream(ctx context.Context) (*Transfer, error) {
	t := newTransfer()
	if err := c.send(ctx, Message{Transfer: t}); err != nil {
		return nil, err
	}
	return t, nil
}

// Result waits for the receiver's outcome of a streamed message and counts
// it sent when delivered.
func (c *Chan) Result(ctx context.Context, t *Transfer) error {
	select {
	case <-t.Done():
		if t.Result() == nil {
			c.mu.Lock()
			c.numSend++
			c.mu.Unlock()
		}
		return t.Result()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Offer sends a message of at most MaxBuffered bytes if that needs no
// wait: a receiver is waiting, or the buffer has room. ok false with a nil
// error means the send would block; then nothing was sent.
func (c *Chan) Offer(data []byte) (ok bool, err error) {
	if len(data) > MaxBuffered {
		return false, ErrTooLarge
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.state(); err != nil {
		return false, err
	}
	m := Message{Data: data}
	if len(c.buf) == 0 && c.handOff(m) {
		c.numSend++
		return true, nil
	}
	if len(c.buf) < c.cap {
		c.buf = append(c.buf, m)
		c.numSend++
		return true, nil
	}
	return false, nil
}

// Poll takes the next message if there is one now, as Recv would; ok false
// with a nil error means a receive would wait.
func (c *Chan) Poll() (m Message, ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.take()
}

// take takes the next message, or says there is none (ok false, and no
// error) or why there will be none. Called locked.
func (c *Chan) take() (Message, bool, error) {
	if c.aborted {
		return Message{}, false, ErrAborted
	}
	if len(c.buf) > 0 {
		m := c.buf[0]
		c.buf = c.buf[1:]
		// A blocked sender may now enter the buffer.
		for len(c.senders) > 0 && len(c.buf) < c.cap {
			s := c.senders[0]
			c.senders = c.senders[1:]
			c.buf = append(c.buf, s.msg)
			c.numSend++
			s.done <- nil
		}
		return m, true, nil
	}
	if len(c.senders) > 0 { // unbuffered: take from the first sender
		s := c.senders[0]
		c.senders = c.senders[1:]
		if s.msg.Transfer == nil {
			c.numSend++
		}
		s.done <- nil
		return s.msg, true, nil
	}
	if c.closed {
		return Message{}, false, ErrClosed
	}
	return Message{}, false, nil
}

// Recv takes the next message, blocking until there is one. The caller
// must call Delivered or Requeue with it.
func (c *Chan) Recv(ctx context.Context) (Message, error) {
	c.mu.Lock()
	if m, ok, err := c.take(); ok || err != nil {
		c.mu.Unlock()
		return m, err
	}
	r := &receiver{got: make(chan Message, 1), err: make(chan error, 1)}
	c.receivers = append(c.receivers, r)
	c.mu.Unlock()
	select {
	case m := <-r.got:
		return m, nil
	case err := <-r.err:
		return Message{}, err
	case <-ctx.Done():
		c.mu.Lock()
		for i, w := range c.receivers {
			if w == r {
				c.receivers = append(c.receivers[:i], c.receivers[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		// A sender may have handed us a message just now.
		select {
		case m := <-r.got:
			return m, nil
		default:
		}
		return Message{}, ctx.Err()
	}
}

// Delivered counts a received message as delivered whole.
func (c *Chan) Delivered() {
	c.mu.Lock()
	c.numRecv++
	c.mu.Unlock()
}

// Requeue puts back a buffered message that its receiver did not get whole,
// at the head of the channel (possibly beyond its capacity for a moment).
func (c *Chan) Requeue(m Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted || m.Transfer != nil {
		return
	}
	if len(c.buf) == 0 && c.handOff(m) {
		return
	}
	c.buf = append([]Message{m}, c.buf...)
}

// Close closes the channel: buffered messages still drain.
func (c *Chan) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.state(); err != nil {
		return err
	}
	c.closed = true
	for _, s := range c.senders {
		s.done <- ErrClosed
	}
	c.senders = nil
	if len(c.buf) == 0 {
		for _, r := range c.receivers {
			r.err <- ErrClosed
		}
		c.receivers = nil
	}
	return nil
}

// Scrub aborts the channel: every waiter fails with ErrAborted.
func (c *Chan) Scrub() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		return
	}
	c.aborted = true
	for _, s := range c.senders {
		s.done <- ErrAborted
	}
	for _, r := range c.receivers {
		r.err <- ErrAborted
	}
	c.senders, c.receivers, c.buf = nil, nil, nil
}
