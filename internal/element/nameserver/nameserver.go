package nameserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/circuit-project/circuit/internal/kind"
)

// Nameserver is a running DNS element.
type Nameserver struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server
	// served is closed when both serving goroutines have returned: only
	// then are the sockets closed (the library closes its UDP socket on
	// the way out, and a second Close does not wait for the first).
	served chan struct{}

	mu      sync.RWMutex
	records map[string][]dns.RR // by lower-case FQDN

	once sync.Once
}

// Start binds addr (host:port; port 0 picks one free on both UDP and TCP)
// and serves, UDP answers limited to 100 a second per source address (200
// at once).
func Start(addr string) (*Nameserver, error) {
	return startWith(addr, defaultLimits())
}

// startWith is Start with the UDP rate limit lim.
func startWith(addr string, lim limits) (*Nameserver, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("address %q: want an IP address and a port", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("address %q: bad port", addr)
	}
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		pc, err = net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, fmt.Errorf("listening on udp %s: %w", addr, err)
		}
		bound := pc.LocalAddr().(*net.UDPAddr)
		ln, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(bound.Port)))
		if err == nil {
			break
		}
		pc.Close()
		if p != 0 || attempt >= 20 {
			return nil, fmt.Errorf("listening on tcp %s: %w", addr, err)
		}
	}
	ns := &Nameserver{addr: pc.LocalAddr().String(), records: map[string][]dns.RR{}}
	ns.udp = &dns.Server{PacketConn: newSourceConn(pc.(*net.UDPConn), newLimiter(lim)), Handler: ns}
	ns.tcp = &dns.Server{Listener: ln, Handler: ns}
	ns.served = make(chan struct{})
	started := make(chan error, 2)
	var serving sync.WaitGroup
	for _, srv := range []*dns.Server{ns.udp, ns.tcp} {
		srv.NotifyStartedFunc = func() { started <- nil }
		serving.Go(func() {
			if err := srv.ActivateAndServe(); err != nil {
				started <- err
			}
		})
	}
	go func() { serving.Wait(); close(ns.served) }()
	for range 2 {
		select {
		case err := <-started:
			if err != nil {
				ns.Scrub()
				return nil, fmt.Errorf("serving DNS on %s: %w", ns.addr, err)
			}
		case <-time.After(5 * time.Second):
			ns.Scrub()
			return nil, fmt.Errorf("serving DNS on %s: did not start", ns.addr)
		}
	}
	return ns, nil
}

// Kind is kind.DNS.
func (ns *Nameserver) Kind() kind.Kind { return kind.DNS }

// Addr is the address the nameserver listens on, UDP and TCP.
func (ns *Nameserver) Addr() string { return ns.addr }

// ErrBadRecord is wrapped by errors about records that do not parse.
var ErrBadRecord = errors.New("bad resource record")

// Set adds a record in zone-file syntax.
func (ns *Nameserver) Set(text string) error {
	rr, err := dns.NewRR(text)
	if err != nil {
		return fmt.Errorf("%w %q: %v", ErrBadRecord, text, err)
	}
	if rr == nil {
		return fmt.Errorf("%w %q: no record in it", ErrBadRecord, text)
	}
	name := strings.ToLower(rr.Header().Name)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for _, have := range ns.records[name] {
		if dns.IsDuplicate(have, rr) {
			return nil
		}
	}
	ns.records[name] = append(ns.records[name], rr)
	return nil
}

// Unset removes every record of name.
func (ns *Nameserver) Unset(name string) error {
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return fmt.Errorf("%q is not a domain name", name)
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	delete(ns.records, strings.ToLower(dns.Fqdn(name)))
	return nil
}

// Records returns the records as text, grouped by name.
func (ns *Nameserver) Records() map[string][]string {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	out := make(map[string][]string, len(ns.records))
	for name, rrs := range ns.records {
		for _, rr := range rrs {
			out[name] = append(out[name], rr.String())
		}
		slices.Sort(out[name])
	}
	return out
}

// ServeDNS answers one query.
func (ns *Nameserver) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	opt := req.IsEdns0()
	if opt != nil {
		// RFC 6891: an answer to a query with an OPT record has one.
		m.SetEdns0(maxUDPSize, opt.Do())
	}
	switch {
	case opt != nil && opt.Version() != 0:
		m.Rcode = dns.RcodeBadVers
	case len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
	default:
		q := req.Question[0]
		ns.mu.RLock()
		answer, known := ns.lookup(strings.ToLower(q.Name), q.Qtype, 8)
		ns.mu.RUnlock()
		m.Answer = answer
		if !known {
			m.Rcode = dns.RcodeNameError
		}
	}
	fit(m, req, w.RemoteAddr())
	w.WriteMsg(m)
}

// lookup finds the answer for name and type, following CNAMEs within the
// records here, at most depth deep. ANY gets one RRset, that of the type
// of the name's first record (RFC 8482). Called with the read lock held.
func (ns *Nameserver) lookup(name string, qtype uint16, depth int) (answer []dns.RR, known bool) {
	rrs, known := ns.records[name]
	if !known {
		return nil, false
	}
	if qtype == dns.TypeANY && len(rrs) > 0 {
		qtype = rrs[0].Header().Rrtype
	}
	var cname dns.RR
	for _, rr := range rrs {
		t := rr.Header().Rrtype
		if t == qtype {
			answer = append(answer, dns.Copy(rr))
		}
		if t == dns.TypeCNAME {
			cname = rr
		}
	}
	if len(answer) == 0 && cname != nil && depth > 0 {
		answer = append(answer, dns.Copy(cname))
		more, _ := ns.lookup(strings.ToLower(cname.(*dns.CNAME).Target), qtype, depth-1)
		answer = append(answer, more...)
	}
	return answer, true
}

// Scrub stops the nameserver and frees its port: when it returns, the
// port can be bound again.
func (ns *Nameserver) Scrub() {
	ns.once.Do(func() {
		defer func() {
			select {
			case <-ns.served:
			case <-time.After(5 * time.Second):
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, srv := range []*dns.Server{ns.udp, ns.tcp} {
			if srv.PacketConn != nil || srv.Listener != nil {
				if err := srv.ShutdownContext(ctx); err != nil {
					// Not started: close the sockets ourselves.
					if srv.PacketConn != nil {
						srv.PacketConn.Close()
					}
					if srv.Listener != nil {
						srv.Listener.Close()
					}
				}
			}
		}
	})
}
