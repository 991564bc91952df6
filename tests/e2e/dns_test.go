package e2e

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestSeedDNSWalkthrough runs seed 000's DNS commands and asks the element
// real questions over UDP and TCP.
func TestSeedDNSWalkthrough(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{})
	mydns := "/" + cl.Servers[1].ID + "/mydns"
	if r := cl.Run("mkdns", mydns); r.Code != 0 {
		t.Fatalf("mkdns: %+v", r)
	}
	var peek struct {
		Address string
		Records map[string][]string
	}
	r := cl.Run("peek", mydns)
	if err := json.Unmarshal([]byte(r.Stdout), &peek); err != nil || !strings.HasPrefix(peek.Address, "127.0.0.1:") || len(peek.Records) != 0 {
		t.Fatalf("peek: %q %v", r.Stdout, err)
	}
	for _, rr := range []string{"miek.nl. 3600 IN MX 10 mx.miek.nl.", "miek.nl. 3600 IN MX 20 mx2.miek.nl.", "mx.miek.nl. 60 IN A 127.0.0.9"} {
		if r := cl.Run("set", mydns, rr); r.Code != 0 {
			t.Fatalf("set %q: %+v", rr, r)
		}
	}
	r = cl.Run("peek", mydns)
	if !strings.Contains(r.Stdout, `"miek.nl.\t3600\tIN\tMX\t10 mx.miek.nl."`) || !strings.Contains(r.Stdout, `"miek.nl.\t3600\tIN\tMX\t20 mx2.miek.nl."`) {
		t.Fatalf("peek after set: %s", r.Stdout)
	}
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("miek.nl.", dns.TypeMX)
		resp, _, err := c.Exchange(m, peek.Address)
		if err != nil || len(resp.Answer) != 2 {
			t.Fatalf("%s MX query: %v %v", network, resp, err)
		}
		m.SetQuestion("nope.miek.nl.", dns.TypeA)
		if resp, _, err = c.Exchange(m, peek.Address); err != nil || resp.Rcode != dns.RcodeNameError {
			t.Fatalf("%s unknown name: %v %v", network, resp, err)
		}
	}
	if r := cl.Run("set", mydns, "miek.nl. 3600 IN MX mx.miek.nl."); r.Code == 0 || !strings.Contains(r.Stderr, "bad resource record") {
		t.Fatalf("malformed record: %+v", r)
	}
	if r := cl.Run("unset", mydns, "miek.nl."); r.Code != 0 {
		t.Fatal(r)
	}
	if r := cl.Run("peek", mydns); strings.Contains(r.Stdout, "MX") {
		t.Fatalf("after unset: %s", r.Stdout)
	}
	// A given address; scrub frees it.
	fixed := "/" + cl.Servers[1].ID + "/fixed"
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if r := cl.Run("mkdns", fixed, addr); r.Code != 0 {
		t.Fatalf("mkdns with an address: %+v", r)
	}
	if r := cl.Run("mkdns", fixed+"2", addr); r.Code == 0 || !strings.Contains(r.Stderr, "address already in use") {
		t.Fatalf("a second nameserver on a taken address: %+v", r)
	}
	if r := cl.Run("scrub", fixed); r.Code != 0 {
		t.Fatal(r)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("the scrubbed nameserver's port is still taken: %v", err)
	}
	pc.Close()
}
