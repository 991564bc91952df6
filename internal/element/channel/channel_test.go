package channel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/kind"
	"github.com/circuit-project/circuit/internal/testsupport"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// recvData receives one small message and marks it delivered.
func recvData(t *testing.T, c *Chan) string {
	t.Helper()
	m, err := c.Recv(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	c.Delivered()
	return string(m.Data)
}

func TestBufferedSendAndRecv(t *testing.T) {
	c := New(kind.Chan, 2)
	for _, m := range []string{"a", "b"} {
		if err := c.Send(ctxT(t, time.Second), []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	// The buffer is full: a third send blocks until a receive frees a slot.
	blocked := ctxT(t, 50*time.Millisecond)
	if err := c.Send(blocked, []byte("c")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send on a full channel = %v, want to block", err)
	}
	done := make(chan error)
	go func() { done <- c.Send(ctxT(t, 5*time.Second), []byte("c")) }()
	if got := recvData(t, c); got != "a" {
		t.Fatalf("first = %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"b", "c"} {
		if got := recvData(t, c); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if st := c.Peek(); st.NumSend != 3 || st.NumRecv != 3 || st.Cap != 2 {
		t.Fatalf("stat %+v", st)
	}
}

func TestUnbufferedWaitsForReceiver(t *testing.T) {
	c := New(kind.Chan, 0)
	if err := c.Send(ctxT(t, 50*time.Millisecond), []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unbuffered send with no receiver = %v", err)
	}
	if c.Peek().NumSend != 0 {
		t.Fatal("a send that gave up was counted")
	}
	got := make(chan string)
	go func() { got <- recvData(t, c) }()
	if err := c.Send(ctxT(t, 5*time.Second), []byte("y")); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "y" {
		t.Fatalf("got %q", g)
	}
}

func TestCloseDrainsThenFails(t *testing.T) {
	c := New(kind.Chan, 3)
	c.Send(ctxT(t, time.Second), []byte("1"))
	c.Send(ctxT(t, time.Second), []byte("2"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctxT(t, time.Second), []byte("3")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close = %v", err)
	}
	if recvData(t, c) != "1" || recvData(t, c) != "2" {
		t.Fatal("buffered messages did not drain in order")
	}
	if _, err := c.Recv(ctxT(t, time.Second)); !errors.Is(err, ErrClosed) {
		t.Fatalf("recv on a drained closed channel = %v", err)
	}
	if !c.Peek().Closed {
		t.Fatal("peek does not say closed")
	}
}

func TestCloseWakesWaiters(t *testing.T) {
	c := New(kind.Chan, 0)
	errs := make(chan error, 2)
	go func() { _, err := c.Recv(ctxT(t, 5*time.Second)); errs <- err }()
	testsupport.Eventually(t, 5*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if n := len(c.receivers); n != 1 {
			return fmt.Errorf("%d receivers waiting, want 1", n)
		}
		return nil
	})
	c.Close()
	if err := <-errs; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting receiver got %v", err)
	}
}

func TestScrubAbortsBothSides(t *testing.T) {
	c := New(kind.Chan, 0)
	d := New(kind.Chan, 0)
	errs := make(chan error, 2)
	go func() { errs <- c.Send(ctxT(t, 5*time.Second), []byte("x")) }()
	go func() { _, err := d.Recv(ctxT(t, 5*time.Second)); errs <- err }()
	testsupport.Eventually(t, 5*time.Second, func() error {
		c.mu.Lock()
		d.mu.Lock()
		defer c.mu.Unlock()
		defer d.mu.Unlock()
		if len(c.senders) != 1 || len(d.receivers) != 1 {
			return fmt.Errorf("%d senders and %d receivers waiting, want 1 each", len(c.senders), len(d.receivers))
		}
		return nil
	})
	c.Scrub()
	d.Scrub()
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrAborted) {
			t.Fatalf("waiter got %v, want ErrAborted", err)
		}
	}
	if !c.Peek().Aborted {
		t.Fatal("peek does not say aborted")
	}
}

func TestLargeMessages(t *testing.T) {
	big := make([]byte, MaxBuffered+1)
	c := New(kind.Chan, 1)
	if err := c.Send(ctxT(t, time.Second), big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Send of %d bytes = %v", len(big), err)
	}
	if _, err := c.SendStream(ctxT(t, time.Second)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("SendStream with no receiver on a buffered channel = %v", err)
	}
	// Unbuffered: the sender waits for a receiver, then streams.
	u := New(kind.Chan, 0)
	var wg sync.WaitGroup
	var got []byte
	wg.Go(func() {
		m, err := u.Recv(ctxT(t, 5*time.Second))
		if err != nil || m.Transfer == nil {
			t.Errorf("recv: %v %+v", err, m)
			return
		}
		for chunk := range m.Transfer.Chunks {
			got = append(got, chunk...)
		}
		m.Transfer.Finish(nil)
		u.Delivered()
	})
	tr, err := u.SendStream(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		tr.Chunks <- big
	}
	close(tr.Chunks)
	if err := u.Result(ctxT(t, 5*time.Second), tr); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(got) != 3*len(big) || u.Peek().NumSend != 1 || u.Peek().NumRecv != 1 {
		t.Fatalf("streamed %d bytes, stat %+v", len(got), u.Peek())
	}
}

func TestRequeueKeepsTheMessage(t *testing.T) {
	c := New(kind.Chan, 1)
	c.Send(ctxT(t, time.Second), []byte("first"))
	m, _ := c.Recv(ctxT(t, time.Second))
	c.Send(ctxT(t, time.Second), []byte("second"))
	c.Requeue(m) // its receiver went away
	if recvData(t, c) != "first" || recvData(t, c) != "second" {
		t.Fatal("a requeued message lost its place")
	}
}

// TestManySendersAndReceivers: every message exactly once, each sender's
// in order.
func TestManySendersAndReceivers(t *testing.T) {
	const senders, receivers, each = 8, 8, 500
	for _, capacity := range []int{0, 1, 16} {
		t.Run(fmt.Sprintf("cap%d", capacity), func(t *testing.T) {
			c := New(kind.Chan, capacity)
			var wg sync.WaitGroup
			for s := range senders {
				wg.Go(func() {
					for i := range each {
						if err := c.Send(ctxT(t, 10*time.Second), []byte(fmt.Sprintf("%d:%d", s, i))); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			got := make([][]string, receivers)
			for r := range receivers {
				wg.Go(func() {
					for range senders * each / receivers {
						m, err := c.Recv(ctxT(t, 10*time.Second))
						if err != nil {
							t.Error(err)
							return
						}
						c.Delivered()
						got[r] = append(got[r], string(m.Data))
					}
				})
			}
			wg.Wait()
			checkExactlyOnce(t, got, senders, each)
		})
	}
}

// checkExactlyOnce checks that every "s:i" arrived once and that each
// receiver saw each sender's messages in increasing order.
func checkExactlyOnce(t *testing.T, got [][]string, senders, each int) {
	t.Helper()
	seen := map[string]bool{}
	for _, msgs := range got {
		last := make([]int, senders)
		for i := range last {
			last[i] = -1
		}
		for _, m := range msgs {
			var s, i int
			if _, err := fmt.Sscanf(m, "%d:%d", &s, &i); err != nil {
				t.Fatalf("mangled message %q", m)
			}
			if seen[m] {
				t.Fatalf("%q delivered twice", m)
			}
			seen[m] = true
			if i <= last[s] {
				t.Fatalf("sender %d's message %d came after %d", s, i, last[s])
			}
			last[s] = i
		}
	}
	if len(seen) != senders*each {
		t.Fatalf("%d messages delivered, want %d", len(seen), senders*each)
	}
}
