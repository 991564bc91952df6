package hosts

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/testsupport/hostcluster"
)

// detectLimit is the bound for a partition to be seen on both sides;
// the LAN timers see a silent host in about 5-6 s.
const detectLimit = 15 * time.Second

// view returns the member IDs that cl's dial-in server lists, sorted.
func view(t *testing.T, cl *client.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := cl.Members(ctx)
	if err != nil {
		t.Fatalf("members via %s: %v", cl.DialinAddr(), err)
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	slices.Sort(ids)
	return ids
}

// waitView polls cl's view every 20 ms until it equals want, and returns how
// long that took.
func waitView(t *testing.T, cl *client.Client, want []string, limit time.Duration, what string) time.Duration {
	t.Helper()
	list := func() ([]string, error) { return view(t, cl), nil }
	return waitList(t, cl.DialinAddr(), list, 20*time.Millisecond, want, limit, what)
}

// waitExecView is waitView through the CLI inside h, for hosts the test
// process cannot reach.
func waitExecView(t *testing.T, c *hostcluster.Cluster, h *hostcluster.Host, want []string, limit time.Duration, what string) time.Duration {
	t.Helper()
	list := func() ([]string, error) { return c.Members(h) }
	return waitList(t, h.Name, list, 50*time.Millisecond, want, limit, what)
}

// waitList polls list every interval until it gives want, in any order, and
// returns how long that took; it fails the test after limit.
func waitList(t *testing.T, who string, list func() ([]string, error), every time.Duration, want []string, limit time.Duration, what string) time.Duration {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	start := time.Now()
	for {
		got, err := list()
		if err == nil && slices.Equal(slices.Sorted(slices.Values(got)), want) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: after %v, %s lists %v (err %v), want %v", what, limit, who, got, err, want)
		}
		time.Sleep(every)
	}
}

// ids returns the current server IDs of hosts.
func ids(hosts ...*hostcluster.Host) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.ServerID()
	}
	return out
}

// subscribe makes @join and @leave subscriptions at /ID/watch on h's server.
func subscribe(t *testing.T, cl *client.Client, h *hostcluster.Host) (join, leave *client.ChanHandle) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	base := "/" + h.ServerID() + "/watch"
	if join, err = cl.MakeSubscriptionAt(ctx, base+"/join", "@join"); err != nil {
		t.Fatal(err)
	}
	if leave, err = cl.MakeSubscriptionAt(ctx, base+"/leave", "@leave"); err != nil {
		t.Fatal(err)
	}
	return join, leave
}

// recvEvent receives one event (a "/ID" message) from a subscription.
func recvEvent(t *testing.T, ch *client.ChanHandle, limit time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	r, err := ch.Recv(ctx)
	if err != nil {
		t.Fatalf("receiving from %s: %v", ch.Path(), err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading an event from %s: %v", ch.Path(), err)
	}
	return strings.TrimPrefix(string(b), "/")
}

// drain receives every event pending on a subscription.
func drain(t *testing.T, ch *client.ChanHandle) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := ch.PeekSubscription(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := 0; i < st.Pending; i++ {
		out = append(out, recvEvent(t, ch, 10*time.Second))
	}
	return out
}

// TestCrashAndBlindRestart kills one host with SIGKILL, as a crash would,
// checks that the rest see it leave, in ls and in @leave, then starts it
// again with the same command and checks that its new server is everywhere.
func TestCrashAndBlindRestart(t *testing.T) {
	c := hostcluster.Start(t, 5, hostcluster.Options{})
	h0, victim := c.Hosts[0], c.Hosts[4]
	cl := c.Client(h0)
	join, leave := subscribe(t, cl, h0)
	old := victim.ServerID()

	start := time.Now()
	c.Kill(victim)
	seen := waitView(t, cl, ids(c.Hosts[:4]...), detectLimit, "after kill -9")
	if got := recvEvent(t, leave, detectLimit); got != old {
		t.Fatalf("@leave after kill -9 gave %s, want %s", got, old)
	}
	t.Logf("FIGURE kill -9 of a host seen in ls / after %v, in @leave after %v", seen.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, h := range c.Hosts[1:4] {
		waitExecView(t, c, h, ids(c.Hosts[:4]...), detectLimit, "after kill -9")
	}

	start = time.Now()
	c.Start(victim) // the same command: -j names the first host's old URL
	if victim.ServerID() == old {
		t.Fatalf("the restarted server kept ID %s", old)
	}
	waitView(t, cl, ids(c.Hosts...), 30*time.Second, "after restart")
	seen = time.Since(start)
	if got := recvEvent(t, join, 10*time.Second); got != victim.ServerID() {
		t.Fatalf("@join after restart gave %s, want %s", got, victim.ServerID())
	}
	t.Logf("FIGURE blind restart: the new server listed %v after the container was started", seen.Round(time.Millisecond))
	for _, h := range c.Hosts[1:] {
		waitExecView(t, c, h, ids(c.Hosts...), 30*time.Second, "after restart")
	}
	if ev := drain(t, leave); len(ev) != 0 {
		t.Fatalf("@leave has more events than the one crash: %v", ev)
	}
}

// TestPartition cuts one host from the network. Both sides must see the
// other leave within 15 s, each side's ls / must agree, and when the cable
// is back both sides must see the other join and list all five again.
func TestPartition(t *testing.T) {
	c := hostcluster.Start(t, 5, hostcluster.Options{})
	h0, cut := c.Hosts[0], c.Hosts[4]
	cl := c.Client(h0)
	join, leave := subscribe(t, cl, h0)
	cutJoin, cutLeave := subscribe(t, cl, cut)
	majority, all := slices.Sorted(slices.Values(ids(c.Hosts[:4]...))), ids(c.Hosts...)

	start := time.Now()
	c.Disconnect(cut)
	seenMajority := waitView(t, cl, majority, detectLimit, "majority side during the partition")
	waitExecView(t, c, cut, ids(cut), detectLimit-time.Since(start), "cut side during the partition")
	t.Logf("FIGURE partition seen: majority side %v, cut side by %v", seenMajority.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, h := range c.Hosts[1:4] {
		waitExecView(t, c, h, majority, detectLimit, "majority side during the partition")
	}
	if got := recvEvent(t, leave, time.Second); got != cut.ServerID() {
		t.Fatalf("@leave on the majority side gave %s, want %s", got, cut.ServerID())
	}
	// The cut side's subscriptions are read from inside it.
	var cutLeft []string
	for range 4 {
		r := c.Exec(cut, "", "recv", cutLeave.Path())
		if r.Code != 0 {
			t.Fatalf("recv on the cut side: %+v", r)
		}
		cutLeft = append(cutLeft, strings.TrimPrefix(r.Stdout, "/"))
	}
	if slices.Sort(cutLeft); !slices.Equal(cutLeft, majority) {
		t.Fatalf("@leave on the cut side gave %v, want %v", cutLeft, majority)
	}

	start = time.Now()
	c.Connect(cut)
	healed := waitView(t, cl, all, time.Minute, "after the partition healed")
	waitExecView(t, c, cut, all, time.Minute, "cut side after the partition healed")
	t.Logf("FIGURE partition healed: majority side lists all 5 after %v, the cut side after %v", healed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, h := range c.Hosts[1:4] {
		waitExecView(t, c, h, all, time.Minute, "after the partition healed")
	}
	if got := recvEvent(t, join, 5*time.Second); got != cut.ServerID() {
		t.Fatalf("@join on the majority side gave %s, want %s", got, cut.ServerID())
	}
	var cutJoined []string
	for range 4 {
		cutJoined = append(cutJoined, recvEvent(t, cutJoin, 5*time.Second))
	}
	if slices.Sort(cutJoined); !slices.Equal(cutJoined, majority) {
		t.Fatalf("@join on the cut side gave %v, want %v", cutJoined, majority)
	}
}

// TestHungHost pauses a host (every process frozen: no answer and no reset)
// and checks that the others see it leave, and see it again once thawed.
func TestHungHost(t *testing.T) {
	c := hostcluster.Start(t, 5, hostcluster.Options{})
	h0, hung := c.Hosts[0], c.Hosts[4]
	cl := c.Client(h0)
	c.Pause(hung)
	seen := waitView(t, cl, ids(c.Hosts[:4]...), detectLimit, "while a host is paused")
	c.Unpause(hung)
	start := time.Now()
	waitView(t, cl, ids(c.Hosts...), time.Minute, "after the host is thawed")
	back := time.Since(start)
	t.Logf("FIGURE paused host seen after %v; back %v after thawing", seen.Round(time.Millisecond), back.Round(time.Millisecond))
}

// TestRollingRestart restarts every server in turn, gracefully, while a
// client keeps starting processes on the live ones through live dial-in
// servers. Not one of its operations may fail.
func TestRollingRestart(t *testing.T) {
	c := hostcluster.Start(t, 5, hostcluster.Options{})
	locks := make([]sync.RWMutex, len(c.Hosts))
	type live struct {
		url string
		cl  *client.Client
	}
	var (
		mu      sync.Mutex
		clients = map[int]live{}
	)
	// clientOf returns a client dialled into host i, made again after i's
	// server changed.
	clientOf := func(i int) (*client.Client, error) {
		url, err := c.Hosts[i].LatestURL()
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if l, ok := clients[i]; ok && l.url == url {
			return l.cl, nil
		}
		cl, err := client.Connect(context.Background(), client.Options{Addr: url})
		if err != nil {
			return nil, err
		}
		if l, ok := clients[i]; ok {
			l.cl.Close()
		}
		clients[i] = live{url, cl}
		return cl, nil
	}
	defer func() {
		for _, l := range clients {
			l.cl.Close()
		}
	}()

	// op starts echo on host tgt through host via, and checks its output.
	op := func(n, via, tgt int) error {
		cl, err := clientOf(via)
		if err != nil {
			return err
		}
		u, err := c.Hosts[tgt].LatestURL()
		if err != nil {
			return err
		}
		path := fmt.Sprintf("/%s/rolling/%d", u[strings.LastIndex(u, "/")+1:], n)
		return echo(context.Background(), cl, path, n)
	}

	stop := make(chan struct{})
	var (
		wg        sync.WaitGroup
		ops, busy int
		failures  []error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		untilStopped(stop, func(n int) bool {
			via, tgt := n%5, (n*3+1)%5
			// Hold both hosts for the whole operation; the restarter takes
			// a host only between operations.
			if !locks[via].TryRLock() {
				busy++
				time.Sleep(10 * time.Millisecond)
				return true
			}
			if tgt != via && !locks[tgt].TryRLock() {
				locks[via].RUnlock()
				busy++
				time.Sleep(10 * time.Millisecond)
				return true
			}
			err := op(n, via, tgt)
			if tgt != via {
				locks[tgt].RUnlock()
			}
			locks[via].RUnlock()
			ops++
			if err != nil {
				failures = append(failures, fmt.Errorf("op %d via %s on %s: %w", n, c.Hosts[via].Name, c.Hosts[tgt].Name, err))
			}
			return true
		})
	}()

	start := time.Now()
	for i, h := range c.Hosts {
		locks[i].Lock()
		c.Stop(h)
		c.Start(h)
		cur := ids(c.Hosts...)
		for _, other := range c.Hosts {
			waitExecView(t, c, other, cur, 30*time.Second, fmt.Sprintf("after restarting %s", h.Name))
		}
		locks[i].Unlock()
	}
	close(stop)
	wg.Wait()
	t.Logf("FIGURE rolling restart of 5 servers in %v; the client ran %d operations, none failed (%d skipped a host being restarted)", time.Since(start).Round(time.Millisecond), ops, busy)
	for _, err := range failures {
		t.Error(err)
	}
	if ops < 20 {
		t.Errorf("only %d operations ran during the rolling restart", ops)
	}
}

// TestDiscoveryInNetwork starts five hosts that find each other by
// multicast on the Docker bridge, with no -j at all.
func TestDiscoveryInNetwork(t *testing.T) {
	start := time.Now()
	c := hostcluster.Start(t, 5, hostcluster.Options{Discover: "228.8.8.8:7711"})
	t.Logf("FIGURE 5 hosts found each other by multicast in %v", time.Since(start).Round(time.Millisecond))
	waitView(t, c.Client(c.Hosts[2]), ids(c.Hosts...), 10*time.Second, "discovery")
}
