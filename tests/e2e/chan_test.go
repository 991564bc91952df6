package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestSeedChannelWalkthrough runs seed 000's channel commands.
func TestSeedChannelWalkthrough(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{})
	charlie := "/" + cl.Servers[1].ID + "/this/is/charlie"
	if r := cl.Run("mkchan", charlie, "3"); r.Code != 0 {
		t.Fatalf("mkchan: %+v", r)
	}
	peek := func() map[string]any {
		t.Helper()
		r := cl.Run("peek", charlie)
		var m map[string]any
		if err := json.Unmarshal([]byte(r.Stdout), &m); err != nil {
			t.Fatalf("peek: %q %v", r.Stdout, err)
		}
		return m
	}
	p := peek()
	if len(p) != 5 || p["Cap"] != 3.0 || p["Closed"] != false || p["Aborted"] != false || p["NumSend"] != 0.0 || p["NumRecv"] != 0.0 {
		t.Fatalf("peek of a new channel: %v; want exactly Cap, Closed, Aborted, NumSend, NumRecv", p)
	}
	for _, msg := range []string{"some file\n", "another\n"} {
		if r := cl.RunVia(cl.Servers[0], msg, "send", charlie); r.Code != 0 {
			t.Fatalf("send: %+v", r)
		}
	}
	if r := cl.Run("recv", charlie); r.Code != 0 || r.Stdout != "some file\n" {
		t.Fatalf("recv: %+v", r)
	}
	if r := cl.Run("close", charlie); r.Code != 0 {
		t.Fatalf("close: %+v", r)
	}
	if r := cl.RunVia(cl.Servers[0], "late", "send", charlie); r.Code == 0 || !strings.Contains(r.Stderr, "closed") {
		t.Fatalf("send after close: %+v", r)
	}
	if r := cl.Run("recv", charlie); r.Code != 0 || r.Stdout != "another\n" {
		t.Fatalf("recv after close drains: %+v", r)
	}
	if r := cl.Run("recv", charlie); r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "channel closed") {
		t.Fatalf("recv on a drained closed channel: %+v", r)
	}
	if p := peek(); p["Closed"] != true || p["NumSend"] != 2.0 || p["NumRecv"] != 2.0 {
		t.Fatalf("peek after: %v", p)
	}
	if r := cl.Run("scrub", charlie); r.Code != 0 {
		t.Fatal(r)
	}
	if r := cl.Run("ls", "/"+cl.Servers[1].ID+"/..."); r.Stdout != "" {
		t.Fatalf("after scrub: %q", r.Stdout)
	}
	// Errors.
	if r := cl.Run("mkchan", charlie, "lots"); r.Code != 2 || !strings.Contains(r.Stderr, `"lots"`) {
		t.Fatalf("bad capacity: %+v", r)
	}
	big := strings.Repeat("x", 40<<10)
	cl.Run("mkchan", charlie, "1")
	if r := cl.RunVia(cl.Servers[0], big, "send", charlie); r.Code == 0 || !strings.Contains(r.Stderr, "32 KiB") {
		t.Fatalf("40 KiB into a buffer: %+v", r)
	}
}

// TestSeedSubscriptions: mk@join and mk@leave as the seed shows, with a
// graceful leave and a kill -9.
func TestSeedSubscriptions(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{Local: true})
	x := "/" + cl.Servers[0].ID
	if r := cl.Run("mk@join", x+"/watch/join"); r.Code != 0 {
		t.Fatal(r)
	}
	if r := cl.Run("mk@leave", x+"/watch/leave"); r.Code != 0 {
		t.Fatal(r)
	}
	a := cl.StartServer("-j", cl.Servers[0].URL)
	b := cl.StartServer("-j", cl.Servers[0].URL)
	joined := map[string]bool{}
	for range 2 {
		r := cl.Run("recv", x+"/watch/join")
		joined[r.Stdout] = true
	}
	if !joined["/"+a.ID] || !joined["/"+b.ID] {
		t.Fatalf("@join gave %v; want /%s and /%s", joined, a.ID, b.ID)
	}
	r := cl.Run("peek", x+"/watch/join")
	if !strings.Contains(r.Stdout, `"Pending": 0`) || !strings.Contains(r.Stdout, `"Kind": "@join"`) {
		t.Fatalf("peek of @join: %s", r.Stdout)
	}
	a.Signal(15) // graceful
	if r := cl.Run("recv", x+"/watch/leave"); r.Stdout != "/"+a.ID {
		t.Fatalf("@leave after SIGTERM: %+v", r)
	}
	start := time.Now()
	b.Kill()
	if r := cl.Run("recv", x+"/watch/leave"); r.Stdout != "/"+b.ID {
		t.Fatalf("@leave after kill -9: %+v", r)
	}
	t.Logf("kill -9 reached @leave after %v (local timing)", time.Since(start))
	if r := cl.Run("peek", x+"/watch/leave"); !strings.Contains(r.Stdout, `"Pending": 0`) {
		t.Fatalf("a leave was reported twice: %s", r.Stdout)
	}
	if r := cl.Run("close", x+"/watch/join"); r.Code == 0 || !strings.Contains(r.Stderr, "scrub it") {
		t.Fatalf("close of a subscription: %+v", r)
	}
}
