package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// transport is memberlist's view of the server's one port: datagrams on the
// UDP socket of the same number, streams dialled and accepted through the
// server's TCP listener.
//
// A server in a datacenter runs two pools on that port (wan.go). The
// datacenter pool's transport owns no socket of its own: its datagrams
// start with wanTag, which the LAN transport's reader sees and hands over
// (field wan), and its streams arrive as their own connection kind.
type transport struct {
	tag     byte       // 0 for the LAN pool; wanTag for the datacenter pool
	wan     *transport // the datacenter pool's transport, if any (LAN only)
	udp     *net.UDPConn
	adv     *net.TCPAddr
	dial    func(ctx context.Context, addr string) (net.Conn, error)
	failed  func(addr string, err error) // told of every failed send and dial
	log     *slog.Logger
	packets chan *memberlist.Packet
	streams chan net.Conn

	once sync.Once
	done chan struct{}
	wg   sync.WaitGroup

	// dials is cancelled by cancelDials, ending dialled streams in flight,
	// so that stopping never waits on a peer that does not answer.
	dials       context.Context
	cancelDials context.CancelFunc
}

// maxPacket bounds one gossip datagram; memberlist sends at most
// UDPBufferSize (1400) bytes.
const maxPacket = 65536

// wanTag starts every datagram of the datacenter pool. No memberlist
// datagram starts with it: they start with a message type or an encryption
// version, both small numbers.
const wanTag = 0xD7

// newTransport makes the LAN pool's transport, which reads the socket; wan,
// if not nil, gets the datagrams that start with wanTag.
func newTransport(udp *net.UDPConn, adv *net.TCPAddr, dial func(context.Context, string) (net.Conn, error), failed func(string, error), log *slog.Logger, wan *transport) *transport {
	t := newPoolTransport(0, udp, adv, dial, failed, log)
	t.wan = wan
	t.wg.Add(1)
	go t.readPackets()
	return t
}

// newPoolTransport makes a transport that does not read the socket.
func newPoolTransport(tag byte, udp *net.UDPConn, adv *net.TCPAddr, dial func(context.Context, string) (net.Conn, error), failed func(string, error), log *slog.Logger) *transport {
	t := &transport{
		tag: tag, udp: udp, adv: adv, dial: dial, failed: failed, log: log,
		packets: make(chan *memberlist.Packet),
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
	}
	t.dials, t.cancelDials = context.WithCancel(context.Background())
	return t
}

func (t *transport) readPackets() {
	defer t.wg.Done()
	rc, err := t.udp.SyscallConn()
	if err != nil {
		t.log.Error("gossip socket", "err", err)
		return
	}
	buf := make([]byte, maxPacket)
	for {
		n, from, err := recvFrom(rc, buf)
		now := time.Now()
		if err != nil {
			select {
			case <-t.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Warn("gossip packet read", "err", err)
			continue
		}
		if n == 0 {
			continue
		}
		to, b := t, buf[:n]
		if b[0] == wanTag {
			if t.wan == nil {
				continue // this server is in no datacenter
			}
			to, b = t.wan, b[1:]
		}
		select {
		// A copy of just the packet: memberlist keeps it, and a fresh
		// 64 KiB buffer per packet was most of an idle server's garbage.
		case to.packets <- &memberlist.Packet{Buf: bytes.Clone(b), From: net.UDPAddrFromAddrPort(from), Timestamp: now}:
		case <-to.done:
		case <-t.done:
			return
		}
	}
}

func (t *transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.adv.IP, t.adv.Port, nil
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.tag != 0 {
		b = append([]byte{t.tag}, b...)
	}
	var err error
	sent := false
	if ap, perr := netip.ParseAddrPort(addr); perr == nil {
		err, sent = sendTo(t.udp, b, ap)
	}
	if !sent {
		ua, rerr := net.ResolveUDPAddr("udp", addr)
		if rerr != nil {
			return time.Time{}, fmt.Errorf("gossip address %q: %w", addr, rerr)
		}
		_, err = t.udp.WriteTo(b, ua)
	}
	select {
	case <-t.done:
		err = nil // shutting down: not worth an error in the log
	default:
	}
	if err != nil {
		t.failed(addr, err)
	}
	return time.Now(), err
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(t.dials, timeout)
	defer cancel()
	c, err := t.dial(ctx, addr)
	if err != nil {
		t.failed(addr, err)
		return nil, err
	}
	return &dialledConn{Conn: c, stop: context.AfterFunc(t.dials, func() { c.Close() })}, nil
}

// dialledConn is a gossip stream this server dialled; it is closed early if
// the transport cancels its dials.
type dialledConn struct {
	net.Conn
	stop func() bool
}

func (c *dialledConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

func (t *transport) handleStream(c net.Conn) {
	select {
	case t.streams <- c:
	case <-t.done:
		c.Close()
	}
}

func (t *transport) Shutdown() error {
	t.once.Do(func() {
		t.cancelDials()
		close(t.done)
		if t.tag == 0 {
			t.udp.Close() // the socket's owner
		}
	})
	t.wg.Wait()
	return nil
}
