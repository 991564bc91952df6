package console

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
)

// hostPolicy says which Host (and so which Origin) values the console
// answers to, whatever address it is bound to: a page of another site whose
// name was made to resolve to the console's address (DNS rebinding) would
// be same-origin with it otherwise.
//
// Loopback addresses and localhost are always allowed. A console bound
// beyond loopback also answers to its bound IP (every address of the
// machine when bound to 0.0.0.0 or ::) and to the machine's host name.
// Names given with Config.Hosts (-http-host) are allowed too, with any port
// (a proxy's); every other name only without a port or with the console's.
type hostPolicy struct {
	port  string          // the bound port
	names map[string]bool // normalized names and IPs, besides loopback
	extra map[string]bool // Config.Hosts, normalized
}

// newHostPolicy makes the policy of a console listening on addr.
func newHostPolicy(addr *net.TCPAddr, extra []string) (*hostPolicy, error) {
	p := &hostPolicy{port: fmt.Sprint(addr.Port), names: map[string]bool{}, extra: map[string]bool{}}
	for _, n := range extra {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if strings.ContainsAny(n, "/:@ ") && !isIP(n) {
			return nil, fmt.Errorf("host name %q: want a name or an IP address, without scheme or port", n)
		}
		p.extra[normHost(n)] = true
	}
	if addr.IP.IsLoopback() {
		return p, nil
	}
	if addr.IP.IsUnspecified() {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return nil, fmt.Errorf("listing the machine's addresses for the allowed Host values: %w", err)
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				p.names[normHost(ipn.IP.String())] = true
			}
		}
	} else {
		p.names[normHost(addr.IP.String())] = true
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		p.names[normHost(h)] = true
	}
	return p, nil
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	return err == nil
}

// normHost is the comparable form of a host name or IP address, without
// port: lower case, IPv6 without brackets, IPv4-mapped addresses as IPv4.
func normHost(h string) string {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap().WithZone("").String()
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// splitHost splits a Host header (or an origin's host) into its name and
// port, "" when it has none.
func splitHost(host string) (name, port string) {
	if h, p, err := net.SplitHostPort(host); err == nil {
		return normHost(h), p
	}
	return normHost(host), ""
}

// allowed tells whether the console answers to host, a Host header.
func (p *hostPolicy) allowed(host string) bool {
	name, port := splitHost(host)
	if name == "" {
		return false
	}
	if p.extra[name] {
		return true
	}
	if port != "" && port != p.port {
		return false
	}
	return loopbackHost(name) || p.names[name]
}

// sameOrigin checks an Origin header against the request's Host (already
// allowed) and the scheme the console is served with.
func sameOrigin(origin, host string, tls bool) error {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("origin %q is not an origin (the page of another site, or none)", origin)
	}
	if u.Scheme != scheme {
		return fmt.Errorf("origin %q: this console is served over %s", origin, scheme)
	}
	on, op := splitHost(u.Host)
	hn, hp := splitHost(host)
	if op == "" {
		op = defaultPort(scheme)
	}
	if hp == "" {
		hp = defaultPort(scheme)
	}
	if on != hn || op != hp {
		return fmt.Errorf("origin %q is another site than host %q", origin, host)
	}
	return nil
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// loopbackHost tells whether a Host header names a loopback address or
// localhost.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
