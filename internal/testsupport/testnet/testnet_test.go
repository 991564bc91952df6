package testnet

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// inNetns runs a command inside ns and returns its combined output.
func inNetns(t *testing.T, ns string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := Command(ctx, ns, name, args...).CombinedOutput()
	return string(out), err
}

// TestNetns makes a namespace and checks, from inside it, that it has only
// its loopback, up, and that multicast is routed there.
func TestNetns(t *testing.T) {
	ns := Netns(t)
	out, err := inNetns(t, ns, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatalf("ip link in %s: %v\n%s", ns, err, out)
	}
	links := strings.Split(strings.TrimSpace(out), "\n")
	if len(links) != 1 || !strings.Contains(links[0], " lo:") || !strings.Contains(links[0], "UP") || !strings.Contains(links[0], "MULTICAST") {
		t.Errorf("links in %s:\n%s\nwant only lo, up, with multicast", ns, out)
	}
	out, err = inNetns(t, ns, "ip", "route", "get", "239.1.2.3")
	if err != nil || !strings.Contains(out, "dev lo") {
		t.Errorf("route to a multicast group in %s: %v\n%s", ns, err, out)
	}
}

var pingTime = regexp.MustCompile(`time=([0-9.]+) ms`)

// ping pings to once from inside ns and returns the round trip.
func ping(t *testing.T, ns string, to netip.Addr) (time.Duration, error) {
	t.Helper()
	out, err := inNetns(t, ns, "/bin/busybox", "ping", "-c", "1", "-W", "2", to.String())
	if err != nil {
		return 0, fmt.Errorf("ping %s from %s: %v: %s", to, ns, err, strings.TrimSpace(out))
	}
	m := pingTime.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping printed no time:\n%s", out)
	}
	ms, _ := strconv.ParseFloat(m[1], 64)
	return time.Duration(ms * float64(time.Millisecond)), nil
}

// TestLink joins two namespaces by a link with a 20 ms delay each way and
// checks that a ping across takes the delay both ways, is lost while the
// link is cut, and crosses again once it heals.
func TestLink(t *testing.T) {
	const delay = 20 * time.Millisecond
	a := Side{Netns: Netns(t), Net: netip.MustParsePrefix("10.62.1.0/24"), Addrs: []netip.Addr{netip.MustParseAddr("10.62.1.1")}}
	b := Side{Netns: Netns(t), Net: netip.MustParsePrefix("10.62.2.0/24"), Addrs: []netip.Addr{netip.MustParseAddr("10.62.2.1")}}
	l := NewLink(t, a, b, delay)
	rtt, err := ping(t, a.Netns, b.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	if rtt < 2*delay {
		t.Errorf("round trip %v across a link of %v each way", rtt, delay)
	}
	if l.Carried.Load() < 2 {
		t.Errorf("%d packets carried after a ping and its answer", l.Carried.Load())
	}
	l.Cut()
	if _, err := ping(t, a.Netns, b.Addrs[0]); err == nil {
		t.Error("a ping crossed a cut link")
	}
	if l.Dropped.Load() == 0 {
		t.Error("no packet dropped while the link was cut")
	}
	l.Heal()
	if _, err := ping(t, b.Netns, a.Addrs[0]); err != nil {
		t.Errorf("after Heal: %v", err)
	}
}
