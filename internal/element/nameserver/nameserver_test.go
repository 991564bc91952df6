package nameserver

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func start(t *testing.T) *Nameserver {
	t.Helper()
	ns, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Scrub)
	return ns
}

func query(t *testing.T, net, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: net, Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %s %s: %v", net, name, dns.TypeToString[qtype], err)
	}
	if r.Truncated && net == "udp" {
		// As a resolver does: the whole answer is over TCP.
		return query(t, "tcp", addr, name, qtype)
	}
	return r
}

// answers returns the answer records' data parts, sorted.
func answers(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		out = append(out, dns.TypeToString[rr.Header().Rrtype]+" "+strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	slices.Sort(out)
	return out
}

func TestQueries(t *testing.T) {
	ns := start(t)
	for _, rr := range []string{
		"miek.nl. 3600 IN MX 10 mx.miek.nl.",
		"miek.nl. 3600 IN MX 20 mx2.miek.nl.",
		"miek.nl. 3600 IN MX 20 mx2.miek.nl.", // again: no duplicate
		"miek.nl. 3600 IN NS ns1.miek.nl.",
		"Mx.Miek.nl. 60 IN A 192.0.2.10",
		"mx.miek.nl. 60 IN AAAA 2001:db8::10",
		"www.miek.nl. 60 IN CNAME mx.miek.nl.",
		`miek.nl. 60 IN TXT "v=spf1 -all"`,
		"_sip._tcp.miek.nl. 60 IN SRV 10 60 5060 mx.miek.nl.",
	} {
		if err := ns.Set(rr); err != nil {
			t.Fatalf("Set(%q): %v", rr, err)
		}
	}
	cases := []struct {
		name  string
		qtype uint16
		want  []string
		rcode int
	}{
		{"miek.nl.", dns.TypeMX, []string{"MX 10 mx.miek.nl.", "MX 20 mx2.miek.nl."}, dns.RcodeSuccess},
		{"MIEK.NL.", dns.TypeNS, []string{"NS ns1.miek.nl."}, dns.RcodeSuccess},
		{"mx.miek.nl.", dns.TypeA, []string{"A 192.0.2.10"}, dns.RcodeSuccess},
		{"mx.miek.nl.", dns.TypeAAAA, []string{"AAAA 2001:db8::10"}, dns.RcodeSuccess},
		{"www.miek.nl.", dns.TypeA, []string{"A 192.0.2.10", "CNAME mx.miek.nl."}, dns.RcodeSuccess},
		{"www.miek.nl.", dns.TypeCNAME, []string{"CNAME mx.miek.nl."}, dns.RcodeSuccess},
		{"miek.nl.", dns.TypeTXT, []string{`TXT "v=spf1 -all"`}, dns.RcodeSuccess},
		{"_sip._tcp.miek.nl.", dns.TypeSRV, []string{"SRV 10 60 5060 mx.miek.nl."}, dns.RcodeSuccess},
		{"miek.nl.", dns.TypeA, nil, dns.RcodeSuccess}, // NODATA
		{"nowhere.miek.nl.", dns.TypeA, nil, dns.RcodeNameError},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range cases {
			r := query(t, network, ns.Addr(), tc.name, tc.qtype)
			if got := answers(r); r.Rcode != tc.rcode || !slices.Equal(got, tc.want) || !r.Authoritative {
				t.Errorf("%s %s %s: rcode %s, answers %q; want %s, %q", network, tc.name, dns.TypeToString[tc.qtype],
					dns.RcodeToString[r.Rcode], got, dns.RcodeToString[tc.rcode], tc.want)
			}
		}
	}
	recs := ns.Records()
	if len(recs["miek.nl."]) != 4 || len(recs["mx.miek.nl."]) != 2 {
		t.Fatalf("records by name: %v", recs)
	}
	if err := ns.Unset("MIEK.nl"); err != nil {
		t.Fatal(err)
	}
	if r := query(t, "udp", ns.Addr(), "miek.nl.", dns.TypeMX); r.Rcode != dns.RcodeNameError {
		t.Fatalf("after unset: %v", r)
	}
}

func TestBadRecords(t *testing.T) {
	ns := start(t)
	for _, bad := range []string{"miek.nl. 3600 IN MX mx.miek.nl.", "miek.nl. IN A 999.1.1.1", "not a record", ""} {
		if err := ns.Set(bad); !errors.Is(err, ErrBadRecord) {
			t.Errorf("Set(%q) = %v, want ErrBadRecord", bad, err)
		}
	}
	if err := ns.Unset("bad..name"); err == nil {
		t.Error("Unset of a malformed name succeeded")
	}
}

func TestScrubFreesThePort(t *testing.T) {
	ns, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ns.Addr()
	ns.Scrub()
	again, err := Start(addr)
	if err != nil {
		t.Fatalf("the port of a scrubbed nameserver is still taken: %v", err)
	}
	again.Scrub()
	if _, err := Start("localhost:53x"); err == nil {
		t.Fatal("a bad address was accepted")
	}
}

func FuzzSet(f *testing.F) {
	for _, s := range []string{"miek.nl. 3600 IN MX 10 mx.miek.nl.", `a. 1 IN TXT "x"`, "a. IN A 1.2.3.4", "$ORIGIN x."} {
		f.Add(s)
	}
	ns, err := Start("127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ns.Scrub()
	f.Fuzz(func(t *testing.T, s string) {
		if err := ns.Set(s); err != nil && !errors.Is(err, ErrBadRecord) {
			t.Fatalf("Set(%q) = %v", s, err)
		}
		ns.Records()
	})
}
