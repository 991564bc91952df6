package testnet

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Side is one end of a Link: a namespace and the network its servers use.
type Side struct {
	Netns string
	Net   netip.Prefix // e.g. 10.61.1.0/24
	// Addrs are the addresses given to the namespace on its end of the
	// link, for servers to bind.
	Addrs []netip.Addr
}

// Link joins two namespaces through a slow link: a TUN device in each, and
// this process carrying IP packets from one to the other after Delay, in
// order. It stands in for tc netem, which the kernels this project is
// tested on do not have (sch_netem is not built); unlike netem it also
// lets a test cut the link and heal it.
type Link struct {
	Delay time.Duration
	cut   atomic.Bool
	// Carried and Dropped count packets, both directions.
	Carried, Dropped atomic.Int64

	files []*os.File
	wg    sync.WaitGroup
	done  chan struct{}
}

// NewLink makes the link between a and b with the given one-way delay and
// removes it when the test ends. Each side's Addrs are added to its end of
// the link, and a route to the other side's Net goes through it.
func NewLink(t testing.TB, a, b Side, delay time.Duration) *Link {
	t.Helper()
	l := &Link{Delay: delay, done: make(chan struct{})}
	t.Cleanup(l.close)
	var rnd [3]byte
	rand.Read(rnd[:])
	for i, side := range []Side{a, b} {
		other := b
		if i == 1 {
			other = a
		}
		name := fmt.Sprintf("ctun%x%d", rnd, i)
		f, err := openTun(name)
		if err != nil {
			skip(t, "cannot make a TUN device for a slow link: %v", err)
		}
		l.files = append(l.files, f)
		cmds := [][]string{{"link", "set", name, "netns", side.Netns}}
		in := func(args ...string) []string { return append([]string{"-n", side.Netns}, args...) }
		for _, ad := range side.Addrs {
			cmds = append(cmds, in("addr", "add", netip.PrefixFrom(ad, side.Net.Bits()).String(), "dev", name))
		}
		cmds = append(cmds, in("link", "set", name, "up"), in("route", "add", other.Net.String(), "dev", name))
		for _, args := range cmds {
			if err := ip(args...); err != nil {
				t.Fatalf("slow link: %v", err)
			}
		}
	}
	l.wg.Add(2)
	go l.carry(l.files[0], l.files[1])
	go l.carry(l.files[1], l.files[0])
	return l
}

// Cut drops every packet on the link until Heal.
func (l *Link) Cut() { l.cut.Store(true) }

// Heal carries packets again.
func (l *Link) Heal() { l.cut.Store(false) }

// openTun makes a TUN device that carries bare IP packets, owned by the
// returned file: it goes when the file is closed.
func openTun(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("/dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	// Non-blocking, so that Close ends a Read in progress.
	return os.NewFile(uintptr(fd), name), nil
}

// queued is a packet and when it may leave.
type queued struct {
	b   []byte
	due time.Time
}

// maxQueued bounds the packets in flight one way, as a router's queue
// would; more are dropped.
const maxQueued = 4096

// carry reads packets from one end and writes each to the other end Delay
// later, until the link is closed.
func (l *Link) carry(from, to *os.File) {
	defer l.wg.Done()
	q := make(chan queued, maxQueued)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case <-l.done:
				return
			case p := <-q:
				if d := time.Until(p.due); d > 0 {
					select {
					case <-l.done:
						return
					case <-time.After(d):
					}
				}
				if _, err := to.Write(p.b); err != nil {
					l.Dropped.Add(1)
					continue
				}
				l.Carried.Add(1)
			}
		}
	}()
	buf := make([]byte, 65536)
	for {
		n, err := from.Read(buf)
		if err != nil {
			return // closed
		}
		if l.cut.Load() {
			l.Dropped.Add(1)
			continue
		}
		select {
		case q <- queued{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(l.Delay)}:
		default:
			l.Dropped.Add(1)
		}
	}
}

func (l *Link) close() {
	close(l.done)
	for _, f := range l.files {
		f.Close()
	}
	l.wg.Wait()
}
