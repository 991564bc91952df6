// Package dc tests several datacenters: two network namespaces of three
// servers each, joined by a slow link (testnet.Link, 50 ms each way).
package dc

import (
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
	"github.com/circuit-project/circuit/internal/testsupport/testnet"
)

var quietFor = flag.Duration("quiet", 20*time.Second, "how long TestTwoDatacenters watches for false failure detections across the slow link")

func TestMain(m *testing.M) { build.Main(m) }

// dc is one datacenter: its namespace's cluster handle and its servers.
type dc struct {
	name    string
	c       *testcluster.Cluster
	servers []*testcluster.Proc
}

func (d *dc) ids() []string {
	var out []string
	for _, p := range d.servers {
		out = append(out, "/"+p.ID)
	}
	slices.Sort(out)
	return out
}

// TestTwoDatacenters starts datacenters east and west, three servers each,
// with every server of both joining through the first server of east. It
// checks that the namespace is one (ls / everywhere lists all six, with
// their datacenters), that an operation on a west server through an east
// one is forwarded, that the slow link raises no false failure for a
// while, that a cut of the link is seen on both sides and heals, and that
// a crash in one datacenter is seen in the other within seconds.
func TestTwoDatacenters(t *testing.T) {
	const delay = 50 * time.Millisecond
	nets := []netip.Prefix{netip.MustParsePrefix("10.61.1.0/24"), netip.MustParsePrefix("10.61.2.0/24")}
	var dcs [2]*dc
	var sides [2]testnet.Side
	for i, name := range []string{"east", "west"} {
		ns := testnet.Netns(t)
		sides[i] = testnet.Side{Netns: ns, Net: nets[i]}
		for h := 1; h <= 3; h++ {
			sides[i].Addrs = append(sides[i].Addrs, netip.AddrFrom4([4]byte{10, 61, byte(i + 1), byte(h)}))
		}
		dcs[i] = &dc{name: name, c: testcluster.Start(t, 0, testcluster.Options{Netns: ns, Plain: true})}
	}
	link := testnet.NewLink(t, sides[0], sides[1], delay)
	east, west := dcs[0], dcs[1]

	start := time.Now()
	for i, d := range dcs {
		for h, a := range sides[i].Addrs {
			args := []string{"-a", a.String() + ":11022", "-dc", d.name}
			if i+h > 0 {
				args = append(args, "-j", east.servers[0].URL)
			}
			d.servers = append(d.servers, d.c.StartServer(args...))
		}
	}
	all := slices.Sorted(slices.Values(append(east.ids(), west.ids()...)))
	for _, d := range dcs {
		waitView(t, d, all, 30*time.Second, "after the joins")
	}
	t.Logf("FIGURE two datacenters of 3 across a %v link: all 6 servers list all 6 %v after the first start", delay, time.Since(start).Round(time.Millisecond))

	// One namespace, with datacenters shown.
	r := east.c.RunVia(east.servers[1], "", "ls", "-l", "/")
	for _, d := range dcs {
		for _, id := range d.ids() {
			if !strings.Contains(r.Stdout, id+"  dc="+d.name) {
				t.Errorf("ls -l / at %s does not show %s in %s:\n%s", east.servers[1].ID, id, d.name, r.Stdout)
			}
		}
	}
	if r := east.c.RunVia(east.servers[0], "", "peek", "/"+west.servers[2].ID); r.Code != 0 || !strings.Contains(r.Stdout, `"DC": "west"`) {
		t.Errorf("peek of a west server through east: %+v", r)
	}

	// An operation on a west server, through an east one, is forwarded;
	// it crosses the link, so it takes at least a round trip more than
	// the same operation through the west server itself.
	target := "/" + west.servers[1].ID + "/hello"
	if r := east.c.RunVia(east.servers[2], `{"Path":"/bin/echo","Args":["hello from west"]}`, "mkproc", target); r.Code != 0 {
		t.Fatalf("mkproc %s through east: %+v", target, r)
	}
	if r := east.c.RunVia(east.servers[2], "", "stdout", target); r.Code != 0 || r.Stdout != "hello from west\n" {
		t.Fatalf("stdout %s through east: %+v", target, r)
	}
	// A selector chooses servers by datacenter.
	r = east.c.RunVia(east.servers[0], "", "run", "-l", "dc=west", "--", "echo", "hi")
	var ran []string
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		id, _, _ := strings.Cut(line, ":")
		ran = append(ran, "/"+id)
	}
	slices.Sort(ran)
	if r.Code != 0 || !slices.Equal(ran, west.ids()) {
		t.Errorf("run -l dc=west through east ran on %v, want %v: %+v", ran, west.ids(), r)
	}
	far, near := timeRun(t, east, east.servers[0], "peek", target), timeRun(t, west, west.servers[1], "peek", target)
	t.Logf("FIGURE peek of a west process: %v through east, %v through west", far.Round(time.Millisecond), near.Round(time.Millisecond))
	if far-near < 2*delay {
		t.Errorf("through east took %v, through west %v: the link's %v each way is not there", far, near, delay)
	}

	// No false failure across the slow link.
	time.Sleep(*quietFor) // the test's subject: a quiet period, nothing to wait for
	for _, d := range dcs {
		for _, p := range d.servers {
			if n := strings.Count(p.Stderr(), "member leave"); n > 0 {
				t.Errorf("%s (%s) saw %d members leave over %v of a quiet slow link:\n%s", p.ID, d.name, n, *quietFor, p.Stderr())
			}
		}
		waitView(t, d, all, time.Second, "after the quiet period")
	}
	carried, dropped := link.Carried.Load(), link.Dropped.Load()
	t.Logf("FIGURE %v across a %v link: 0 false failures; %d packets carried, %d dropped", *quietFor, delay, carried, dropped)

	// Cut the link: each side sees the other datacenter go.
	link.Cut()
	start = time.Now()
	var seen [2]time.Duration
	for i, d := range dcs {
		waitView(t, d, d.ids(), 60*time.Second, "after the link was cut")
		seen[i] = time.Since(start)
	}
	t.Logf("FIGURE link between datacenters cut: east lists only itself after %v, west by %v", seen[0].Round(time.Millisecond), seen[1].Round(time.Millisecond))

	link.Heal()
	start = time.Now()
	for _, d := range dcs {
		waitView(t, d, all, 60*time.Second, "after the link healed")
	}
	t.Logf("FIGURE link healed: all 6 list all 6 again after %v", time.Since(start).Round(time.Millisecond))

	// A crash in west is seen in east within seconds: west's watchers
	// confirm it and tell east, whose servers find its port refused too.
	// The datacenter pool alone would take 8 s and more.
	victim := west.servers[2]
	victim.Kill()
	start = time.Now()
	left := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return id == "/"+victim.ID })
	waitView(t, east, left, 5*time.Second, "after a west server was killed")
	t.Logf("FIGURE a west server killed: no east server lists it after %v", time.Since(start).Round(time.Millisecond))
}

// waitView waits until every server of d lists want at "/", and returns
// how long that took; it fails the test after limit.
func waitView(t *testing.T, d *dc, want []string, limit time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for _, p := range d.servers {
		err := testsupport.Wait(limit-time.Since(start), func() error {
			r := d.c.RunVia(p, "", "ls", "/")
			if got := testcluster.Lines(r.Stdout); r.Code != 0 || !slices.Equal(got, want) {
				return fmt.Errorf("%s in %s lists %v (%s), want %v", p.ID, d.name, got, strings.TrimSpace(r.Stderr), want)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: within %v: %v", what, limit, err)
		}
	}
	return time.Since(start)
}

// timeRun runs the CLI through p three times and returns the fastest.
func timeRun(t *testing.T, d *dc, p *testcluster.Proc, args ...string) time.Duration {
	t.Helper()
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		if r := d.c.RunVia(p, "", args...); r.Code != 0 {
			t.Fatalf("%s through %s: %+v", fmt.Sprint(args), p.ID, r)
		}
		best = min(best, time.Since(start))
	}
	return best
}
