package hosts

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/testsupport/hostcluster"
)

var churnFor = flag.Duration("churn", 20*time.Second, "how long TestChurn kills and starts hosts")

// TestChurn kills and starts hosts about once a second while clients send
// and receive on a channel hosted on a stable host, and run processes on
// stable hosts. No message may be lost or duplicated, no operation may fail,
// no server may crash, and each subscriber's @join and @leave events must
// add up to its server's final membership.
func TestChurn(t *testing.T) {
	const stable, churning = 3, 3
	c := hostcluster.Start(t, stable+churning, hostcluster.Options{})
	h0, h1, h2 := c.Hosts[0], c.Hosts[1], c.Hosts[2]
	cl0, cl2 := c.Client(h0), c.Client(h2)

	// Subscribers on h1, and the view they start from.
	before := view(t, cl0)
	join, leave := subscribe(t, cl0, h1)
	initial := view(t, c.Client(h1))
	if !slices.Equal(before, initial) {
		t.Fatalf("membership moved while subscribing: %v, then %v", before, initial)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *churnFor+2*time.Minute)
	defer cancel()
	ch, err := cl0.MakeChanAt(ctx, "/"+h1.ServerID()+"/churn/ch", 8)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		sent     int
		received []int
		procs    int
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	stop := make(chan struct{})

	// The sender sends 0, 1, 2... through h0, then "end".
	wg.Add(1)
	go func() {
		defer wg.Done()
		untilStopped(stop, func(i int) bool {
			if err := ch.Send(ctx, strings.NewReader(strconv.Itoa(i))); err != nil {
				fail("sending %d: %v", i, err)
				return false
			}
			mu.Lock()
			sent++
			mu.Unlock()
			return true
		})
		if err := ch.Send(ctx, strings.NewReader("end")); err != nil {
			fail("sending end: %v", err)
		}
	}()
	// The receiver receives through h2 until "end".
	chAt2 := cl2.ChanAt(ch.Path())
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			r, err := chAt2.Recv(ctx)
			if err != nil {
				fail("receiving: %v", err)
				return
			}
			b, err := io.ReadAll(r)
			if err != nil {
				fail("reading a message: %v", err)
				return
			}
			if string(b) == "end" {
				return
			}
			n, err := strconv.Atoi(string(b))
			if err != nil {
				fail("received %q", b)
				return
			}
			mu.Lock()
			received = append(received, n)
			mu.Unlock()
		}
	}()
	// Processes run on h0 and h2, through the other.
	for _, p := range []struct {
		cl *client.Client
		on *hostcluster.Host
	}{{cl0, h2}, {cl2, h0}} {
		id := p.on.ServerID()
		wg.Add(1)
		go func() {
			defer wg.Done()
			untilStopped(stop, func(i int) bool {
				if err := echo(ctx, p.cl, fmt.Sprintf("/%s/churn/p%d", id, i), i); err != nil {
					fail("process %d on %s: %v", i, id, err)
					return false
				}
				mu.Lock()
				procs++
				mu.Unlock()
				return true
			})
		}()
	}

	// Churn: about once a second, kill a running churn host or start a
	// stopped one. A loaded Docker engine can take seconds to start or stop
	// a container, so the churn runs on, up to three times as long, until
	// it has made one event for every two seconds asked for.
	start := time.Now()
	kills, starts := 0, 0
	minEvents := int(churnFor.Seconds() / 2)
	more := func() bool {
		d := time.Since(start)
		return d < 3**churnFor && (d < *churnFor || kills+starts < minEvents)
	}
	rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), 6))
	for tick := time.NewTicker(time.Second); more(); <-tick.C {
		h := c.Hosts[stable+rng.IntN(churning)]
		if c.Running(h) {
			h.URL() // its server is up (and each start's URL is on record)
			c.Kill(h)
			kills++
		} else {
			c.Launch(h)
			starts++
		}
	}
	churned := time.Since(start)
	close(stop)
	wg.Wait()
	settled := time.Now()

	// The final membership: the hosts running now, by their latest IDs.
	var live []*hostcluster.Host
	for _, h := range c.Hosts {
		if c.Running(h) {
			live = append(live, h)
		}
	}
	final := ids(live...)
	for _, cl := range []*client.Client{cl0, c.Client(h1), cl2} {
		waitView(t, cl, final, time.Minute, "after churn")
	}
	t.Logf("FIGURE after churn: clients done %v after the last event, all views agree %v after that",
		settled.Sub(start.Add(churned)).Round(time.Millisecond), time.Since(settled).Round(time.Millisecond))

	for _, f := range failures {
		t.Error(f)
	}
	// Exactly once, in order: one sender, one receiver.
	if len(received) != sent {
		t.Errorf("sent %d messages, received %d", sent, len(received))
	}
	for i, n := range received {
		if n != i {
			t.Errorf("message %d was %d: lost, duplicated or reordered", i, n)
			break
		}
	}
	for _, h := range c.Hosts[:stable] {
		if !c.Running(h) {
			t.Errorf("stable host %s is not running", h.Name)
		}
	}
	for _, h := range c.Hosts {
		if log := h.Log(); strings.Contains(log, "panic") || strings.Contains(log, "fatal error") {
			t.Errorf("%s's server crashed:\n%s", h.Name, log)
		}
	}

	joins, leaves := drain(t, join), drain(t, leave)
	checkEvents(t, initial, joins, leaves, view(t, c.Client(h1)))
	events := len(joins) + len(leaves)
	t.Logf("FIGURE churn for %v: %d kills, %d starts; h1 saw %d joins and %d leaves (%.2f events/s); %d messages exactly once; %d processes",
		churned.Round(time.Millisecond), kills, starts, len(joins), len(leaves), float64(events)/churned.Seconds(), sent, procs)
	if kills+starts < minEvents {
		t.Errorf("only %d kills and starts in %v; want %d", kills+starts, churned, minEvents)
	}
}

// checkEvents checks a subscriber's events against its server's membership:
// each server joins at most once and leaves at most once, leaves only after
// being a member, and the members at the start plus the joins minus the
// leaves are the members at the end.
func checkEvents(t *testing.T, initial, joins, leaves, final []string) {
	t.Helper()
	known := map[string]bool{}
	for _, id := range initial {
		known[id] = true
	}
	for _, id := range joins {
		if known[id] {
			t.Errorf("@join reported %s, already a member", id)
		}
		known[id] = true
	}
	gone := map[string]bool{}
	for _, id := range leaves {
		if !known[id] {
			t.Errorf("@leave reported %s, never a member", id)
		}
		if gone[id] {
			t.Errorf("@leave reported %s twice", id)
		}
		gone[id] = true
	}
	var want []string
	for id := range known {
		if !gone[id] {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	if !slices.Equal(want, final) {
		t.Errorf("start %v + joins %v - leaves %v = %v, but the server lists %v", initial, joins, leaves, want, final)
	}
}

// untilStopped calls step with 0, 1, 2... until stop is closed or step
// returns false.
func untilStopped(stop <-chan struct{}, step func(i int) bool) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if !step(i) {
			return
		}
	}
}

// echo runs echo n at path through cl and checks its output and exit.
func echo(ctx context.Context, cl *client.Client, path string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := cl.MakeProcAt(ctx, path, client.Cmd{Path: "/bin/echo", Args: []string{strconv.Itoa(n)}, Scrub: true})
	if err != nil {
		return err
	}
	out, err := p.OpenStream(ctx, "stdout")
	if err != nil {
		return err
	}
	defer out.Close()
	b, err := io.ReadAll(out)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(b)) != strconv.Itoa(n) {
		return fmt.Errorf("%s printed %q", path, b)
	}
	if st, err := p.Wait(ctx); err != nil || st.Exit != nil {
		return fmt.Errorf("wait %s: %v, %v", path, st.Exit, err)
	}
	return nil
}
