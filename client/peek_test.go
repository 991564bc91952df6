package client_test

import (
	"reflect"
	"testing"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestPeekAt: one call gives every kind's state, the same as the kind's own
// Peek, and Get the handle of the kind.
func TestPeekAt(t *testing.T) {
	servers := testcluster.StartInProcess(t, 1, nil)
	c := client.Dial(servers[0].URL().String(), nil)
	defer c.Close()
	id := servers[0].ID().String()
	host := c.Walk([]string{id})
	at := func(name string) string { return "/" + id + "/" + name }

	p, err := host.Walk([]string{"proc"}).MakeProc(client.Cmd{Path: "/bin/sleep", Args: []string{"1000"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Scrub()
	ch, err := c.MakeChanAt(ctx(t), at("chan"), 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := host.Walk([]string{"join"}).MakeOnJoin(); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Walk([]string{"leave"}).MakeOnLeave(); err != nil {
		t.Fatal(err)
	}
	ns, err := c.MakeNameserverAt(ctx(t), at("dns"), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Nameserver().Scrub()
	if err := ns.Set(ctx(t), "a.example. IN A 10.0.0.1"); err != nil {
		t.Fatal(err)
	}

	procStat, err := c.ProcAt(at("proc")).Peek(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	chanStat, err := ch.Peek(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	joinStat, err := c.ChanAt(at("join")).PeekSubscription(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	leaveStat, err := c.ChanAt(at("leave")).PeekSubscription(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	nsStat, err := ns.Peek(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.ServerInfo(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, kind string
		state      any
		handle     any
	}{
		{"/" + id, "server", info, (*client.Server)(nil)},
		{at("proc"), "proc", procStat, (*client.Proc)(nil)},
		{at("chan"), "chan", chanStat, (*client.Chan)(nil)},
		{at("join"), "@join", joinStat, (*client.Subscription)(nil)},
		{at("leave"), "@leave", leaveStat, (*client.Subscription)(nil)},
		{at("dns"), "dns", nsStat, (*client.Nameserver)(nil)},
	} {
		el, err := c.PeekAt(ctx(t), tc.path)
		if err != nil {
			t.Fatalf("PeekAt(%s): %v", tc.path, err)
		}
		if el.Kind != tc.kind || !reflect.DeepEqual(el.State, tc.state) {
			t.Errorf("PeekAt(%s) = %q %#v, want %q %#v", tc.path, el.Kind, el.State, tc.kind, tc.state)
		}
		got := c.Walk(client.Split(tc.path)).Get()
		want := reflect.TypeOf(tc.handle).Elem()
		if want.Kind() == reflect.Interface && (got == nil || !reflect.TypeOf(got).Implements(want)) ||
			want.Kind() != reflect.Interface && reflect.TypeOf(got) != reflect.TypeOf(tc.handle) {
			t.Errorf("Get(%s) gave a %T, want a %v", tc.path, got, want)
		}
	}

	for _, path := range []string{at("none"), at("none/below")} {
		el, err := c.PeekAt(ctx(t), path)
		if err != nil || el.Kind != "" || el.State != nil {
			t.Errorf("PeekAt(%s) of an empty anchor = %+v, %v", path, el, err)
		}
	}
}
