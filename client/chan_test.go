package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/server"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

func dialEach(t *testing.T, servers []*server.Server, key []byte) []*client.Client {
	var out []*client.Client
	for _, s := range servers {
		c, err := client.Connect(context.Background(), client.Options{Addr: s.URL().String(), Key: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, c)
	}
	return out
}

func recvString(t *testing.T, h *client.ChanHandle) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := h.Recv(ctx)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}

// TestChannelManyClients: 8 senders and 8 receivers, each with its own
// client dialled into one of three servers, 1,000 messages per sender, on
// a channel hosted by one server. Every message arrives once, whole, and
// each sender's in order.
func TestChannelManyClients(t *testing.T) {
	const senders, receivers, each = 8, 8, 1000
	servers := testcluster.StartInProcess(t, 3, nil)
	clients := dialEach(t, servers, nil)
	path := "/" + servers[2].ID().String() + "/fanin"
	if _, err := clients[0].MakeChanAt(context.Background(), path, 16); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for s := range senders {
		c := clients[s%len(clients)]
		wg.Go(func() {
			h := c.ChanAt(path)
			for i := range each {
				// Some messages span chunks, to check wholeness.
				msg := fmt.Sprintf("%d:%d:", s, i) + strings.Repeat("x", (i%7)*1000)
				if err := h.Send(ctx, strings.NewReader(msg)); err != nil {
					t.Errorf("sender %d message %d: %v", s, i, err)
					return
				}
			}
		})
	}
	got := make([][]string, receivers)
	for r := range receivers {
		c := clients[(r+1)%len(clients)]
		wg.Go(func() {
			h := c.ChanAt(path)
			for range senders * each / receivers {
				m, err := recvString(t, h)
				if err != nil {
					t.Errorf("receiver %d: %v", r, err)
					return
				}
				got[r] = append(got[r], m)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[string]bool{}
	for _, msgs := range got {
		last := make([]int, senders)
		for i := range last {
			last[i] = -1
		}
		for _, m := range msgs {
			var s, i int
			if _, err := fmt.Sscanf(m, "%d:%d:", &s, &i); err != nil {
				t.Fatalf("mangled message %.40q", m)
			}
			if want := fmt.Sprintf("%d:%d:", s, i) + strings.Repeat("x", (i%7)*1000); m != want {
				t.Fatalf("message %d:%d arrived with %d bytes, want %d", s, i, len(m), len(want))
			}
			key := fmt.Sprintf("%d:%d", s, i)
			if seen[key] {
				t.Fatalf("%s delivered twice", key)
			}
			seen[key] = true
			if i <= last[s] {
				t.Fatalf("sender %d: message %d after %d", s, i, last[s])
			}
			last[s] = i
		}
	}
	if len(seen) != senders*each {
		t.Fatalf("%d messages delivered, want %d", len(seen), senders*each)
	}
	st, err := clients[1].ChanAt(path).Peek(context.Background())
	if err != nil || st.NumSend != senders*each || st.NumRecv != senders*each {
		t.Fatalf("peek %+v, %v", st, err)
	}
}

// TestChannelFaults: clients that go away mid-transfer lose nothing and
// deliver nothing partial.
func TestChannelFaults(t *testing.T) {
	key := []byte(security.Generate()) // with TLS end to end through the relay
	k, _ := security.New(key)
	servers := testcluster.StartInProcess(t, 2, k)
	clients := dialEach(t, servers, key)
	ctx := context.Background()
	path := "/" + servers[1].ID().String() + "/faulty"
	h, err := clients[0].MakeChanAt(ctx, path, 0)
	if err != nil {
		t.Fatal(err)
	}

	// A sender dies halfway through a large message on an unbuffered
	// channel, while a receiver is taking it: the receiver gets an error,
	// not a partial message.
	big := make([]byte, 4<<20)
	rand.Read(big)
	started := make(chan struct{})
	recvErr := make(chan error, 1)
	go func() {
		r, err := clients[1].ChanAt(path).Recv(ctx)
		if err != nil {
			close(started)
			recvErr <- err
			return
		}
		if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
			close(started)
			recvErr <- err
			return
		}
		close(started) // the transfer is under way
		_, err = io.ReadAll(r)
		recvErr <- err
	}()
	sctx, kill := context.WithCancel(ctx)
	w, err := h.Sender(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(big[:2<<20]); err != nil { // several chunks: streaming starts
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the streamed message never reached the receiver")
	}
	kill() // the sending client dies halfway
	if err := <-recvErr; err == nil {
		t.Fatal("a receiver got a message whose sender died halfway")
	}

	// A receiver dies after taking a buffered message but before reading
	// it: the message goes to the next receiver.
	b, err := clients[0].MakeChanAt(ctx, path+"2", 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"one", "two"} {
		if err := b.Send(ctx, strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	rctx, die := context.WithCancel(ctx)
	r, err := clients[1].ChanAt(path + "2").Recv(rctx)
	if err != nil {
		t.Fatal(err)
	}
	die() // gone before acknowledging
	r.Close()
	// Both arrive. (The one put back may come second: the next receive
	// can reach the server before the dead receiver's cancellation does.)
	var got []string
	for range 2 {
		m, err := recvString(t, clients[1].ChanAt(path+"2"))
		if err != nil {
			t.Fatalf("after a receiver died: %v", err)
		}
		got = append(got, m)
	}
	if slices.Sort(got); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("after a receiver died: got %q, want one and two", got)
	}

	// Oversized, closed, scrubbed.
	if err := b.Send(ctx, bytes.NewReader(big)); err == nil || !strings.Contains(err.Error(), "32 KiB") {
		t.Fatalf("a large message with no receiver on a buffered channel: %v", err)
	}
	b.Close(ctx)
	if _, err := recvString(t, b); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("recv on a closed, drained channel: %v", err)
	}
	if err := b.Send(ctx, strings.NewReader("late")); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("send on a closed channel: %v", err)
	}
	waiting := make(chan error, 1)
	go func() { _, err := recvString(t, h); waiting <- err }()
	// Whether the receiver is already waiting or not, it must fail: aborted,
	// or no channel there any more.
	if err := clients[0].ScrubAt(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; err == nil || !strings.Contains(err.Error(), "aborted") && !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("a receiver waiting on a scrubbed channel: %v", err)
	}
}

// TestSubscriptions: @join and @leave yield the paths of servers that join
// and leave after they were made, in order, once each.
func TestSubscriptions(t *testing.T) {
	servers := testcluster.StartInProcess(t, 2, nil)
	c := client.Dial(servers[0].URL().String(), nil)
	defer c.Close()
	host := c.Walk([]string{servers[0].ID().String()})
	join, err := host.Walk([]string{"watch", "join"}).MakeOnJoin()
	if err != nil {
		t.Fatal(err)
	}
	leave, err := host.Walk([]string{"watch", "leave"}).MakeOnLeave()
	if err != nil {
		t.Fatal(err)
	}
	if st := join.Peek(); st.Kind != "@join" || st.Pending != 0 {
		t.Fatalf("a new subscription replays old events: %+v", st)
	}
	newcomer := testcluster.StartInProcess(t, 1, nil)[0]
	if err := newcomer.JoinCluster(servers[0].URL().Addr); err != nil {
		t.Fatal(err)
	}
	if got, ok := join.Consume(); !ok || got != "/"+newcomer.ID().String() {
		t.Fatalf("@join gave %q, %v; want /%s", got, ok, newcomer.ID())
	}
	newcomer.Stop() // graceful
	if got, ok := leave.Consume(); !ok || got != "/"+newcomer.ID().String() {
		t.Fatalf("@leave gave %q, %v", got, ok)
	}
	if join.Peek().Pending != 0 || leave.Peek().Pending != 0 {
		t.Fatalf("duplicate events: %+v %+v", join.Peek(), leave.Peek())
	}
	got := c.Walk([]string{servers[0].ID().String(), "watch", "join"}).Get()
	if _, ok := got.(client.Subscription); !ok {
		t.Fatalf("Get of a subscription gave %T", got)
	}
}

// TestRecvCancelledTakesNothing: receives whose context ends at every
// moment of a message's arrival either receive it or leave it to the next
// receive: a message is never taken by a receive that reports failure.
func TestRecvCancelledTakesNothing(t *testing.T) {
	const n = 300
	servers := testcluster.StartInProcess(t, 2, nil)
	clients := dialEach(t, servers, nil)
	path := "/" + servers[1].ID().String() + "/cut"
	h, err := clients[0].MakeChanAt(context.Background(), path, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := h.Send(context.Background(), strings.NewReader(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	cut := 0
	for i := 0; len(got) < n && i < 20*n; i++ {
		// Ends after 0 to ~2 ms: before, during and after a message's
		// round trips on loopback.
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%40)*50*time.Microsecond)
		r, err := h.Recv(ctx)
		var b []byte
		if err == nil {
			b, err = io.ReadAll(r)
			r.Close()
		}
		cancel()
		if err != nil {
			cut++
			continue
		}
		if got[string(b)] {
			t.Fatalf("message %s received twice", b)
		}
		got[string(b)] = true
	}
	if len(got) != n {
		t.Fatalf("%d of %d messages received (%d receives cut short): the others were lost", len(got), n, cut)
	}
	t.Logf("%d receives cut short, none took a message", cut)
}

// TestReceiversDieMidMessage: at full speed, receivers that take a message
// and die before its end (their connection closes, as at a kill) lose
// nothing: every message reaches one of the receivers that live, once and
// whole, and the channel counts each delivered once.
func TestReceiversDieMidMessage(t *testing.T) {
	const senders, each = 4, 300
	servers := testcluster.StartInProcess(t, 2, nil)
	clients := dialEach(t, servers, nil)
	path := "/" + servers[1].ID().String() + "/dying"
	if _, err := clients[0].MakeChanAt(context.Background(), path, 64); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	message := func(s, i int) string { // up to 28 KiB: buffered, whole
		return fmt.Sprintf("%d:%d:", s, i) + strings.Repeat("x", (i%5)*7000)
	}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			h := clients[s%2].ChanAt(path)
			for i := range each {
				if err := h.Send(ctx, strings.NewReader(message(s, i))); err != nil {
					t.Errorf("sender %d message %d: %v", s, i, err)
					return
				}
			}
		})
	}
	// Two receivers die in the middle of every message they take, until
	// the others have them all.
	dctx, stopDying := context.WithCancel(ctx)
	var deaths [2]int
	var dying sync.WaitGroup
	for d := range deaths {
		dying.Go(func() {
			h := clients[d].ChanAt(path)
			for dctx.Err() == nil {
				r, err := h.Recv(dctx)
				if err != nil {
					return
				}
				if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
					t.Errorf("dying receiver %d: %v", d, err)
				}
				r.Close() // before the end: its connection closes
				deaths[d]++
			}
		})
	}
	var mu sync.Mutex
	seen := map[string]int{}
	for r := range 2 {
		wg.Go(func() {
			h := clients[1-r].ChanAt(path)
			for {
				mu.Lock()
				n := len(seen)
				mu.Unlock()
				if n == senders*each || t.Failed() {
					return
				}
				if ctx.Err() != nil {
					t.Errorf("receiver %d: %d of %d messages arrived in time", r, n, senders*each)
					return
				}
				rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				m, err := h.Recv(rctx)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					continue // the other receiver may have the last
				}
				if err != nil {
					t.Errorf("receiver %d: %v", r, err)
					return
				}
				b, err := io.ReadAll(m)
				if err != nil {
					t.Errorf("receiver %d: %v", r, err)
					return
				}
				var s, i int
				if _, err := fmt.Sscanf(string(b), "%d:%d:", &s, &i); err != nil || string(b) != message(s, i) {
					t.Errorf("receiver %d: a mangled message of %d bytes: %.20q", r, len(b), b)
					return
				}
				mu.Lock()
				seen[fmt.Sprintf("%d:%d", s, i)]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	stopDying()
	dying.Wait()
	if t.Failed() {
		return
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("message %s delivered %d times", k, n)
		}
	}
	if deaths[0]+deaths[1] < 10 {
		t.Errorf("the dying receivers died only %d times: the test proves little", deaths[0]+deaths[1])
	}
	st, err := clients[1].ChanAt(path).Peek(context.Background())
	if err != nil || st.NumSend != senders*each || st.NumRecv != senders*each {
		t.Fatalf("peek %+v, %v: want %d sent and delivered", st, err, senders*each)
	}
	t.Logf("%d messages, receivers died in %d of them", senders*each, deaths[0]+deaths[1])
}

// TestLargeMessagesWhole: messages around the buffer limit and the frame
// size, and one of several MiB, arrive whole and unchanged on an
// unbuffered channel.
func TestLargeMessagesWhole(t *testing.T) {
	servers := testcluster.StartInProcess(t, 2, nil)
	clients := dialEach(t, servers, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path := "/" + servers[1].ID().String() + "/large"
	h, err := clients[0].MakeChanAt(ctx, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{32 << 10, 32<<10 + 1, 1 << 20, 1<<20 + 32<<10 + 1, 5<<20 + 7} {
		msg := make([]byte, size)
		rand.Read(msg)
		got := make(chan []byte, 1)
		go func() {
			b, err := recvBytes(ctx, clients[1].ChanAt(path))
			if err != nil {
				t.Error(err)
			}
			got <- b
		}()
		if err := h.Send(ctx, bytes.NewReader(msg)); err != nil {
			t.Fatalf("send of %d bytes: %v", size, err)
		}
		if b := <-got; !bytes.Equal(b, msg) {
			t.Fatalf("a message of %d bytes arrived as %d bytes, or changed", size, len(b))
		}
	}
}

func recvBytes(ctx context.Context, h *client.ChanHandle) ([]byte, error) {
	r, err := h.Recv(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
