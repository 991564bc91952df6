package nameserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The UDP answer size rules (see doc.go).
const (
	// amplification bounds a UDP answer: at most this many times the
	// size of the query, on the wire.
	amplification = 3
	// maxUDPSize caps the UDP size a client advertises in its EDNS0 OPT
	// record: 1232 bytes, the DNS flag day 2020 figure, fits every path
	// without IP fragmentation. It is also the size our OPT advertises.
	maxUDPSize = 1232
)

// errNotSent is wrapped by the errors of UDP writes that the rate limit
// or the size bound refused.
var errNotSent = errors.New("UDP answer not sent")

// udpSource is the address of a UDP query as the server sees it: the
// library's session (sender and destination address, so that the answer
// leaves from the address the query came to) and the query's size on the
// wire. The library hands it back to the handler as RemoteAddr and to
// sourceConn.WriteTo as the destination.
type udpSource struct {
	session *dns.SessionUDP
	size    int
}

func (s *udpSource) Network() string { return "udp" }
func (s *udpSource) String() string  { return s.session.RemoteAddr().String() }

// ip is the sender's address, IPv4 addresses unmapped.
func (s *udpSource) ip() netip.Addr {
	if u, ok := s.session.RemoteAddr().(*net.UDPAddr); ok {
		return u.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// sourceConn is the UDP socket as the library's server sees it. Every
// datagram goes through it both ways: reads record each query's size,
// and every write, the library's own error replies included, passes the
// amplification bound and the rate limit.
type sourceConn struct {
	*net.UDPConn
	limit *limiter
}

func newSourceConn(c *net.UDPConn, limit *limiter) *sourceConn {
	// As the library does for a *net.UDPConn: ask for each datagram's
	// destination address, so that an answer on a wildcard address leaves
	// from the address the query came to. The errors are ignored, as the
	// library ignores them where it does not set the options: without
	// them the kernel picks the source, which is the bound address when
	// that is not a wildcard.
	_ = ipv6.NewPacketConn(c).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
	_ = ipv4.NewPacketConn(c).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
	return &sourceConn{UDPConn: c, limit: limit}
}

// ReadFrom reads one query and returns its source as a *udpSource.
func (c *sourceConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, session, err := dns.ReadFromSessionUDP(c.UDPConn, b)
	if err != nil {
		return n, nil, err
	}
	return n, &udpSource{session: session, size: n}, nil
}

// WriteTo sends an answer to the source of a query, if the answer is at
// most amplification times the query's size and the source is within its
// rate; over the rate, it sends every second answer as an empty truncated
// one and drops the others.
func (c *sourceConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	src, ok := addr.(*udpSource)
	if !ok {
		return 0, fmt.Errorf("%w: %v is not the source of a query", errNotSent, addr)
	}
	if len(b) > amplification*src.size {
		return 0, fmt.Errorf("%w to %v: %d bytes for a %d-byte query", errNotSent, src, len(b), src.size)
	}
	switch c.limit.judge(src.ip()) {
	case drop:
		return 0, fmt.Errorf("%w to %v: over the rate limit, dropped", errNotSent, src)
	case slip:
		var err error
		if b, err = slipped(b); err != nil {
			return 0, fmt.Errorf("%w to %v: truncating it: %w", errNotSent, src, err)
		}
	}
	n, err := dns.WriteToSessionUDP(c.UDPConn, b, src.session)
	if err != nil {
		return n, fmt.Errorf("writing a UDP answer to %v: %w", src, err)
	}
	return n, nil
}

// slipped is the answer b with no records but its OPT and the TC bit
// set: it tells a client over the rate to ask again over TCP. It is never
// bigger than b.
func slipped(b []byte) ([]byte, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return nil, fmt.Errorf("unpacking the answer: %w", err)
	}
	opt := m.IsEdns0()
	m.Answer, m.Ns, m.Extra = nil, nil, nil
	if opt != nil {
		m.Extra = []dns.RR{opt}
	}
	m.Truncated = true
	out, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing the truncated answer: %w", err)
	}
	return out, nil
}

// udpLimit is the largest UDP answer to req, querySize bytes on the wire:
// 512 bytes, or the size its OPT record advertises within [512, 1232];
// and at most amplification times querySize.
func udpLimit(req *dns.Msg, querySize int) int {
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
	}
	return min(size, amplification*querySize)
}

// fit makes the answer m to req fit its transport: over TCP a DNS
// message's 64 KiB; over UDP udpLimit. Where records are cut, the TC bit
// is set and the client asks again over TCP. Below 512 bytes (a small
// query's three times) the answer is whole or empty: Truncate does not
// cut below 512.
func fit(m, req *dns.Msg, from net.Addr) {
	src, ok := from.(*udpSource)
	if !ok {
		m.Truncate(dns.MaxMsgSize)
		return
	}
	limit := udpLimit(req, src.size)
	m.Truncate(limit)
	if limit >= dns.MinMsgSize {
		return
	}
	m.Compress = true
	if m.Len() <= limit {
		return
	}
	opt := m.IsEdns0()
	m.Answer, m.Ns, m.Extra = nil, nil, nil
	if opt != nil {
		m.Extra = []dns.RR{opt}
	}
	m.Truncated = true
}
