package nameserver

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The zone of the size tests: a few small RRsets on example., and
// big.example. with 100 TXT records of 60 bytes (7.3 kB on the wire).
func startZone(t *testing.T, lim limits) *Nameserver {
	t.Helper()
	ns, err := startWith("127.0.0.1:0", lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Scrub)
	rrs := []string{
		"example. 60 IN MX 10 mx.example.",
		"example. 60 IN MX 20 mx2.example.",
		"example. 60 IN NS ns.example.",
		`example. 60 IN TXT "v=spf1 -all"`,
		"example. 60 IN A 192.0.2.1",
		"example. 60 IN AAAA 2001:db8::1",
		"a.example. 60 IN A 192.0.2.2",
		"www.example. 60 IN CNAME a.example.",
	}
	for i := range 100 {
		rrs = append(rrs, fmt.Sprintf(`big.example. 60 IN TXT "%03d%s"`, i, strings.Repeat("x", 57)))
	}
	for _, rr := range rrs {
		if err := ns.Set(rr); err != nil {
			t.Fatalf("Set(%q): %v", rr, err)
		}
	}
	return ns
}

// edns0 is a query for name and type with an OPT record advertising
// size, padded (RFC 7830) so that the query is at least wireSize bytes.
func edns0(name string, qtype uint16, size uint16, wireSize int) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(size, false)
	if pad := wireSize - m.Len(); pad > 0 {
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, max(pad-4, 0))})
	}
	return m
}

func plain(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// udpExchange sends m from a socket on local (an IP, port 0) to addr and
// returns the answer with the sizes of the query and of the answer as
// they were on the wire.
func udpExchange(t *testing.T, local, addr string, m *dns.Msg) (r *dns.Msg, querySize, answerSize int) {
	t.Helper()
	conn := dialUDP(t, local, addr)
	wire, err := m.Pack()
	if err != nil {
		t.Fatalf("packing the query: %v", err)
	}
	if _, err := conn.Write(wire); err != nil {
		t.Fatalf("sending the query: %v", err)
	}
	r, n := readAnswer(t, conn, m.Id)
	return r, len(wire), n
}

func dialUDP(t *testing.T, local, addr string) *net.UDPConn {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(local)}, raddr)
	if err != nil {
		t.Fatalf("a UDP socket on %s: %v", local, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readAnswer reads one datagram, within 5 seconds, and unpacks it.
func readAnswer(t *testing.T, conn *net.UDPConn, id uint16) (*dns.Msg, int) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatalf("unpacking the %d-byte answer: %v", n, err)
	}
	if r.Id != id {
		t.Fatalf("answer %d to query %d", r.Id, id)
	}
	return r, n
}

// tcpExchange asks over TCP.
func tcpExchange(t *testing.T, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("tcp query %v: %v", m.Question, err)
	}
	return r
}

// oneRRset says whether the answer is one RRset (and not empty).
func oneRRset(r *dns.Msg) bool {
	if len(r.Answer) == 0 {
		return false
	}
	first := r.Answer[0].Header()
	for _, rr := range r.Answer {
		if h := rr.Header(); h.Rrtype != first.Rrtype || !strings.EqualFold(h.Name, first.Name) {
			return false
		}
	}
	return true
}

func TestUDPWithoutEDNS0(t *testing.T) {
	ns := startZone(t, defaultLimits())
	q := plain("big.example.", dns.TypeTXT)
	r, qs, size := udpExchange(t, "127.0.0.1", ns.Addr(), q)
	if size > dns.MinMsgSize || !r.Truncated || r.IsEdns0() != nil {
		t.Errorf("UDP answer of %d bytes (query %d), TC %v, OPT %v: want at most 512 bytes, TC, no OPT",
			size, qs, r.Truncated, r.IsEdns0())
	}
	if whole := tcpExchange(t, ns.Addr(), q); len(whole.Answer) != 100 || whole.Truncated {
		t.Errorf("over TCP: %d records, TC %v; want all 100", len(whole.Answer), whole.Truncated)
	}
	// A small answer is whole, without TC.
	r, _, _ = udpExchange(t, "127.0.0.1", ns.Addr(), plain("example.", dns.TypeMX))
	if len(r.Answer) != 2 || r.Truncated {
		t.Errorf("MX over UDP: %d records, TC %v; want 2, no TC", len(r.Answer), r.Truncated)
	}
}

func TestUDPWithEDNS0(t *testing.T) {
	ns := startZone(t, defaultLimits())
	cases := []struct {
		advertise      uint16
		wireSize       int // of the query, padded
		least, most    int // the answer's size
		wantTruncation bool
	}{
		// A query big enough for its 3x: the advertised size is honoured...
		{advertise: 600, wireSize: 250, least: 513, most: 600, wantTruncation: true},
		// ... up to 1232 bytes.
		{advertise: 4096, wireSize: 468, least: 1000, most: maxUDPSize, wantTruncation: true},
		// Below 512 counts as 512.
		{advertise: 100, wireSize: 468, least: 400, most: dns.MinMsgSize, wantTruncation: true},
		// A small query gets at most 3 times its size: here nothing but TC.
		{advertise: 4096, wireSize: 0, least: 0, most: 3 * 40, wantTruncation: true}, // a 40-byte query
	}
	for _, tc := range cases {
		q := edns0("big.example.", dns.TypeTXT, tc.advertise, tc.wireSize)
		r, qs, size := udpExchange(t, "127.0.0.1", ns.Addr(), q)
		opt := r.IsEdns0()
		if size < tc.least || size > tc.most || size > amplification*qs || r.Truncated != tc.wantTruncation ||
			opt == nil || opt.UDPSize() != maxUDPSize {
			t.Errorf("advertising %d in a %d-byte query: answer of %d bytes, TC %v, OPT %v; want %d to %d bytes, TC %v, an OPT of 1232",
				tc.advertise, qs, size, r.Truncated, opt, tc.least, min(tc.most, amplification*qs), tc.wantTruncation)
		}
	}
	// A small answer is whole, and has an OPT record.
	r, _, _ := udpExchange(t, "127.0.0.1", ns.Addr(), edns0("example.", dns.TypeMX, 1232, 0))
	if len(r.Answer) != 2 || r.Truncated || r.IsEdns0() == nil {
		t.Errorf("MX over UDP with EDNS0: %d records, TC %v, OPT %v; want 2, no TC, an OPT", len(r.Answer), r.Truncated, r.IsEdns0())
	}
	// Over TCP too, an EDNS0 query gets an OPT record.
	if r := tcpExchange(t, ns.Addr(), edns0("example.", dns.TypeMX, 1232, 0)); r.IsEdns0() == nil {
		t.Errorf("no OPT record in the TCP answer to an EDNS0 query")
	}
	// An EDNS version we do not speak: BADVERS (RFC 6891), with an OPT.
	q := edns0("example.", dns.TypeMX, 1232, 0)
	q.IsEdns0().SetVersion(1)
	r, _, _ = udpExchange(t, "127.0.0.1", ns.Addr(), q)
	if r.Rcode != dns.RcodeBadVers || r.IsEdns0() == nil || len(r.Answer) != 0 {
		t.Errorf("EDNS version 1: rcode %s, OPT %v, %d records; want BADVERS, an OPT, no records",
			dns.RcodeToString[r.Rcode], r.IsEdns0(), len(r.Answer))
	}
}

func TestANYIsMinimal(t *testing.T) {
	ns := startZone(t, defaultLimits())
	cases := []struct {
		name  string
		want  uint16 // the type of the one RRset
		count int
	}{
		{"example.", dns.TypeMX, 2}, // the type of its first record
		{"EXAMPLE.", dns.TypeMX, 2},
		{"www.example.", dns.TypeCNAME, 1},
		{"big.example.", dns.TypeTXT, 100},
	}
	for _, tc := range cases {
		q := plain(tc.name, dns.TypeANY)
		r := tcpExchange(t, ns.Addr(), q)
		if !oneRRset(r) || r.Answer[0].Header().Rrtype != tc.want || len(r.Answer) != tc.count {
			t.Errorf("tcp ANY %s: %v; want the %d %s records only", tc.name, r.Answer, tc.count, dns.TypeToString[tc.want])
		}
		u, _, _ := udpExchange(t, "127.0.0.1", ns.Addr(), q)
		if !u.Truncated && (!oneRRset(u) || u.Answer[0].Header().Rrtype != tc.want || len(u.Answer) != tc.count) {
			t.Errorf("udp ANY %s: %v; want the %d %s records only", tc.name, u.Answer, tc.count, dns.TypeToString[tc.want])
		}
		if u.Truncated && len(u.Answer) >= tc.count {
			t.Errorf("udp ANY %s: TC with all %d records", tc.name, len(u.Answer))
		}
	}
	if r := tcpExchange(t, ns.Addr(), plain("nowhere.example.", dns.TypeANY)); r.Rcode != dns.RcodeNameError {
		t.Errorf("ANY for an unknown name: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
}

// TestNoAmplification: no UDP answer is more than 3 times its query, on
// the wire; an answer cut to fit has the TC bit, and the whole answer is
// over TCP.
func TestNoAmplification(t *testing.T) {
	ns := startZone(t, defaultLimits())
	queries := []struct {
		label string
		name  string
		qtype uint16
	}{
		{"A", "a.example.", dns.TypeA},
		{"A via CNAME", "www.example.", dns.TypeA},
		{"MX", "example.", dns.TypeMX},
		{"TXT", "example.", dns.TypeTXT},
		{"ANY", "example.", dns.TypeANY},
		{"100 TXT", "big.example.", dns.TypeTXT},
		{"ANY of 100 TXT", "big.example.", dns.TypeANY},
		{"NXDOMAIN", "nowhere.example.", dns.TypeA},
	}
	variants := []struct {
		label string
		make  func(name string, qtype uint16) *dns.Msg
	}{
		{"plain", plain},
		{"EDNS0 1232", func(n string, t uint16) *dns.Msg { return edns0(n, t, 1232, 0) }},
		{"EDNS0 4096", func(n string, t uint16) *dns.Msg { return edns0(n, t, 4096, 0) }},
		{"EDNS0 4096 padded to 128", func(n string, t uint16) *dns.Msg { return edns0(n, t, 4096, 128) }},
		{"EDNS0 4096 padded to 468", func(n string, t uint16) *dns.Msg { return edns0(n, t, 4096, 468) }},
	}
	for _, query := range queries {
		var worst float64
		var worstAt string
		for _, v := range variants {
			q := v.make(query.name, query.qtype)
			r, qs, size := udpExchange(t, "127.0.0.1", ns.Addr(), q)
			ratio := float64(size) / float64(qs)
			if size > amplification*qs {
				t.Errorf("%s, %s: a %d-byte query got a %d-byte answer (%.2fx)", query.label, v.label, qs, size, ratio)
			}
			whole := tcpExchange(t, ns.Addr(), q)
			if r.Truncated != (len(r.Answer) < len(whole.Answer)) || r.Rcode != whole.Rcode {
				t.Errorf("%s, %s: over UDP %d records, TC %v, %s; over TCP %d records, %s",
					query.label, v.label, len(r.Answer), r.Truncated, dns.RcodeToString[r.Rcode],
					len(whole.Answer), dns.RcodeToString[whole.Rcode])
			}
			if ratio > worst {
				worst, worstAt = ratio, fmt.Sprintf("%d/%d bytes, %s, TC %v", size, qs, v.label, r.Truncated)
			}
		}
		t.Logf("%-15s largest amplification %.2fx (%s)", query.label, worst, worstAt)
	}
}

// frozen is a clock that moves only when told. The server reads it in
// its own goroutines: atomically.
type frozen struct{ nanos atomic.Int64 }

func (c *frozen) Now() time.Time      { return time.Unix(0, c.nanos.Load()) }
func (c *frozen) add(d time.Duration) { c.nanos.Add(int64(d)) }

type judgement struct {
	addr netip.Addr
	v    verdict
}

// startLimited starts the zone with burst answers per source and a clock
// that stands still, and returns the channel of the limiter's verdicts.
func startLimited(t *testing.T, burst, sources int) (*Nameserver, *frozen, <-chan judgement) {
	t.Helper()
	clock := new(frozen)
	clock.add(1_000_000_000 * time.Second)
	verdicts := make(chan judgement, 1024)
	ns := startZone(t, limits{rate: 1, burst: burst, sources: sources, now: clock.Now,
		judged: func(a netip.Addr, v verdict) {
			select {
			case verdicts <- judgement{a, v}:
			default: // the test reads every verdict it causes: never full
			}
		}})
	return ns, clock, verdicts
}

// ask sends one query from conn and waits for the limiter's verdict on
// its answer, then for the answer itself unless it was dropped.
func ask(t *testing.T, conn *net.UDPConn, verdicts <-chan judgement, id uint16) (verdict, *dns.Msg) {
	t.Helper()
	q := plain("example.", dns.TypeMX)
	q.Id = id
	wire, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(wire); err != nil {
		t.Fatal(err)
	}
	var j judgement
	select {
	case j = <-verdicts:
	case <-time.After(5 * time.Second):
		t.Fatalf("query %d from %v: no verdict in 5s", id, conn.LocalAddr())
	}
	if want := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr(); j.addr != want {
		t.Fatalf("query %d: verdict for %v, want %v", id, j.addr, want)
	}
	if j.v == drop {
		return drop, nil
	}
	r, _ := readAnswer(t, conn, id)
	return j.v, r
}

func TestRateLimit(t *testing.T) {
	const burst = 5
	ns, _, verdicts := startLimited(t, burst, 16)
	conn := dialUDP(t, "127.0.0.1", ns.Addr())
	counts := map[verdict]int{}
	for i := range 20 {
		v, r := ask(t, conn, verdicts, uint16(i+1))
		counts[v]++
		want := answer
		if over := i + 1 - burst; over > 0 {
			want = []verdict{slip, drop}[over%2]
		}
		if v != want {
			t.Errorf("query %d: %v, want %v", i+1, v, want)
		}
		switch v {
		case answer:
			if len(r.Answer) != 2 || r.Truncated {
				t.Errorf("query %d: answer of %d records, TC %v; want 2 records", i+1, len(r.Answer), r.Truncated)
			}
		case slip:
			if len(r.Answer) != 0 || !r.Truncated || r.Rcode != dns.RcodeSuccess {
				t.Errorf("query %d: slipped answer of %d records, TC %v; want empty with TC", i+1, len(r.Answer), r.Truncated)
			}
		}
	}
	if counts[answer] != burst || counts[slip] != 7 || counts[drop] != 8 {
		t.Errorf("20 queries in a burst of %d: %v; want 5 answers, 7 slipped, 8 dropped", burst, counts)
	}
	// Another source is not limited by the first one's burst.
	other := dialUDP(t, "127.0.0.2", ns.Addr())
	if v, r := ask(t, other, verdicts, 100); v != answer || len(r.Answer) != 2 {
		t.Errorf("from 127.0.0.2: %v, %v; want an answer", v, r)
	}
	// TCP is not limited.
	if r := tcpExchange(t, ns.Addr(), plain("example.", dns.TypeMX)); len(r.Answer) != 2 {
		t.Errorf("over TCP after the burst: %v", r)
	}
}

func TestRateLimitRefillsAndForgets(t *testing.T) {
	ns, clock, verdicts := startLimited(t, 2, 2)
	limit := ns.udp.PacketConn.(*sourceConn).limit
	first := dialUDP(t, "127.0.0.1", ns.Addr())
	id := uint16(0)
	next := func(conn *net.UDPConn) verdict {
		id++
		v, _ := ask(t, conn, verdicts, id)
		return v
	}
	for range 2 {
		if v := next(first); v != answer {
			t.Fatalf("within the burst: %v", v)
		}
	}
	if v := next(first); v != drop {
		t.Fatalf("over the burst: %v", v)
	}
	// A second later, at 1 a second, one more.
	clock.add(time.Second)
	if v := next(first); v != answer {
		t.Fatalf("a second later: %v", v)
	}
	if v := next(first); v != slip {
		t.Fatalf("over again: %v", v)
	}
	// Two other sources fill the table of 2: the first is forgotten and
	// gets a new burst.
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		if v := next(dialUDP(t, ip, ns.Addr())); v != answer {
			t.Fatalf("from %s: %v", ip, v)
		}
		if n := limit.len(); n > 2 {
			t.Fatalf("%d sources tracked, want at most 2", n)
		}
	}
	if v := next(first); v != answer {
		t.Fatalf("the first source, forgotten: %v", v)
	}
}

func TestLimiterTableIsBounded(t *testing.T) {
	l := newLimiter(defaultLimits())
	for i := range 10_000 {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if v := l.judge(addr); v != answer {
			t.Fatalf("first answer to %v: %v", addr, v)
		}
	}
	if n := l.len(); n != 4096 {
		t.Fatalf("%d sources tracked after 10000, want 4096", n)
	}
}
