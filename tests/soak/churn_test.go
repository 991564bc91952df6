package soak

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

var churnFor = flag.Duration("churn", 20*time.Second, "how long the churn test runs (issue 9 asks 2m; CI runs 20s)")

// events records one subscription's events, in order.
type events struct {
	mu   sync.Mutex
	list []string // "+X..." for a join, "-X..." for a leave
}

func (e *events) snapshot() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

// follow receives a subscription's events until ctx ends.
func follow(ctx context.Context, sub *client.ChanHandle, sign string, into *events) {
	for ctx.Err() == nil {
		r, err := sub.Recv(ctx)
		if err != nil {
			return
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return
		}
		into.mu.Lock()
		into.list = append(into.list, sign+strings.TrimPrefix(string(b), "/"))
		into.mu.Unlock()
	}
}

// subscriber is one stable server's view: its members when it subscribed,
// and the join and leave events since, merged in the order received.
type subscriber struct {
	srv     *testcluster.Proc
	initial []string
	ev      events
}

// TestChurn kills and starts servers at 5 events a second on loopback
// (LAN timers). Afterwards every surviving server lists the same members,
// and on each of the stable servers the @join/@leave events, applied to
// its members at the start, give that list, each server's events
// alternating join and leave.
func TestChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churns for 20 s or more")
	}
	cl := testcluster.Start(t, 10, testcluster.Options{Plain: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Three stable servers subscribe; the other seven are fair game.
	var subs []*subscriber
	for _, s := range cl.Servers[:3] {
		c := cl.Client(s)
		sub := &subscriber{srv: s}
		for _, kind := range []string{"@join", "@leave"} {
			h, err := c.MakeSubscriptionAt(ctx, "/"+s.ID+"/churn"+kind, kind)
			if err != nil {
				t.Fatal(err)
			}
			sign := map[string]string{"@join": "+", "@leave": "-"}[kind]
			wg.Go(func() { follow(ctx, h, sign, &sub.ev) })
		}
		ms, err := c.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			sub.initial = append(sub.initial, m.ID)
		}
		subs = append(subs, sub)
	}
	stable := map[string]bool{}
	for _, s := range cl.Servers[:3] {
		stable[s.ID] = true
	}

	// 5 events a second: a kill when there are many, a start when few.
	kills, starts := 0, 0
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	end := time.Now().Add(*churnFor)
	for time.Now().Before(end) {
		<-tick.C
		var victims []*testcluster.Proc
		for _, s := range cl.Servers {
			if s.Running() && !stable[s.ID] {
				victims = append(victims, s)
			}
		}
		if len(victims) > 3 && (len(victims) >= 11 || rand.IntN(2) == 0) {
			victims[rand.IntN(len(victims))].Kill()
			kills++
		} else {
			cl.StartServer("-j", cl.Servers[0].URL)
			starts++
		}
	}
	var alive []string
	for _, s := range cl.Servers {
		if s.Running() {
			alive = append(alive, s.ID)
		}
	}
	slices.Sort(alive)
	start := time.Now()
	views := map[string][]string{}
	agreed := func() bool {
		agree := true
		for _, s := range cl.Servers {
			if !s.Running() {
				continue
			}
			r := cl.RunVia(s, "", "ls", "/")
			var ids []string
			for _, l := range testcluster.Lines(r.Stdout) {
				ids = append(ids, strings.TrimPrefix(l, "/"))
			}
			views[s.ID] = ids
			agree = agree && slices.Equal(ids, alive)
		}
		return agree
	}
	err := testsupport.Wait(30*time.Second, func() error {
		if !agreed() {
			return fmt.Errorf("the survivors disagree: %s", diff(views, alive))
		}
		return nil
	})
	if err != nil {
		explain(t, cl, views, alive)
		t.Fatal(err)
	}
	settled := time.Since(start)

	// Each stable server's events, applied to its start, give the end,
	// and alternate for every server.
	for _, sub := range subs {
		testsupport.Eventually(t, 20*time.Second, func() error {
			events := sub.ev.snapshot()
			got, ok := replay(sub.initial, events)
			if ok && slices.Equal(got, alive) {
				return nil
			}
			return fmt.Errorf("the events at %s do not add up (consistent: %v): %v, want %v (events %v)", sub.srv.ID, ok, got, alive, events)
		})
	}
	total := len(subs[0].ev.snapshot())
	t.Logf("FIGURE churn for %v at 5 events/s: %d kills, %d starts; %d servers at the end, all agreeing %v after the last event; %d events at each stable server, all consistent",
		*churnFor, kills, starts, len(alive), settled.Round(time.Millisecond), total)
}

// explain logs what each disagreeing server logged about the members it
// has wrong.
func explain(t *testing.T, cl *testcluster.Cluster, views map[string][]string, want []string) {
	for _, s := range cl.Servers {
		v, ok := views[s.ID]
		if !ok || slices.Equal(v, want) {
			continue
		}
		for _, line := range strings.Split(s.Stderr(), "\n") {
			for _, id := range append(slices.Clone(v), want...) {
				if slices.Contains(v, id) != slices.Contains(want, id) && strings.Contains(line, id) {
					t.Logf("%s: %s", s.ID, line)
					break
				}
			}
		}
	}
}

// diff describes how each view differs from want.
func diff(views map[string][]string, want []string) string {
	var b strings.Builder
	for id, v := range views {
		var extra, missing []string
		for _, x := range v {
			if !slices.Contains(want, x) {
				extra = append(extra, x)
			}
		}
		for _, x := range want {
			if !slices.Contains(v, x) {
				missing = append(missing, x)
			}
		}
		if len(extra)+len(missing) > 0 {
			b.WriteString(id + ": extra " + strings.Join(extra, ",") + " missing " + strings.Join(missing, ",") + "; ")
		}
	}
	return b.String()
}

// replay applies join and leave events to a starting membership, checking
// that each server's events alternate: no join of a member, no leave of a
// non-member. It returns the sorted result and whether it was consistent.
func replay(initial, evs []string) ([]string, bool) {
	in := map[string]bool{}
	for _, id := range initial {
		in[id] = true
	}
	for _, e := range evs {
		id, join := e[1:], e[0] == '+'
		if in[id] == join {
			return nil, false
		}
		in[id] = join
	}
	var out []string
	for id, ok := range in {
		if ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, true
}
