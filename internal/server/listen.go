package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultPort is used when -a names a host without a port.
const DefaultPort = 11022

// bindAddr works out the address to bind and advertise from -a and -if.
func bindAddr(addr, iface string) (net.IP, int, error) {
	host, port := addr, DefaultPort
	if addr != "" {
		if h, p, err := net.SplitHostPort(addr); err == nil {
			host = h
			if port, err = strconv.Atoi(p); err != nil || port < 0 || port > 65535 {
				return nil, 0, fmt.Errorf("address %q: bad port %q", addr, p)
			}
		} else if strings.Count(addr, ":") == 1 || strings.HasSuffix(addr, ":") {
			return nil, 0, fmt.Errorf("address %q: %w", addr, err)
		}
	}
	switch {
	case iface != "" && host != "":
		return nil, 0, fmt.Errorf("give either an address host (-a %s) or an interface (-if %s), not both; -a :PORT sets the port with -if", addr, iface)
	case iface != "":
		ip, err := ifaceIP(iface)
		return ip, port, err
	case host == "":
		return nil, 0, errors.New("no address to bind: give -a HOST[:PORT] or -if INTERFACE")
	}
	ip := net.ParseIP(host)
	if ip == nil {
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return nil, 0, fmt.Errorf("address %q: cannot resolve host %q: %v", addr, host, err)
		}
		ip = ips[0]
	}
	if ip.IsUnspecified() {
		return nil, 0, fmt.Errorf("address %q: a server must bind the address others reach it by, not %s", addr, ip)
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return ip, port, nil
}

func ifaceIP(name string) (net.IP, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", name, err)
	}
	var v6 net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLinkLocalUnicast() {
			continue
		}
		if v4 := n.IP.To4(); v4 != nil {
			return v4, nil
		}
		if v6 == nil {
			v6 = n.IP
		}
	}
	if v6 != nil {
		return v6, nil
	}
	return nil, fmt.Errorf("interface %q has no usable IP address", name)
}

// listen binds TCP and UDP on the same port. With port 0 it retries until
// both protocols get the same free number.
func listen(ip net.IP, port int) (*net.TCPListener, *net.UDPConn, error) {
	for attempt := 0; ; attempt++ {
		tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
		if err != nil {
			return nil, nil, fmt.Errorf("listening on %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
		}
		got := tl.Addr().(*net.TCPAddr).Port
		uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: got})
		if err == nil {
			return tl, uc, nil
		}
		tl.Close()
		if port != 0 || attempt >= 20 {
			return nil, nil, fmt.Errorf("listening for gossip on udp %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(got)), err)
		}
	}
}

// lockVar takes the -var directory for this server. A second server on the
// same directory is refused.
func lockVar(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("-var %s: %w", dir, err)
	}
	path := filepath.Join(dir, "circuit.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("-var %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		holder := strings.TrimSpace(string(b))
		if holder == "" {
			holder = "unknown"
		}
		return nil, fmt.Errorf("-var %s is in use by another circuit server (pid %s)", dir, holder)
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "%d\n", os.Getpid())
	}
	return f, nil
}
