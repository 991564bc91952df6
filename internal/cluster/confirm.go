package cluster

import (
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/circuit-project/circuit/internal/ident"
)

// Memberlist declares a member failed only after its own timers run out,
// and on a server cut from the network those timers stretch to tens of
// seconds: every probe fails, so Lifeguard judges the server itself unhealthy
// and slows down, and no other member confirms its suspicions. But the
// kernel often knows sooner. A connect to a port nobody listens on is
// refused at once, and a host with no route to a member gets "network
// unreachable" or "host unreachable". This file acts on that evidence, and
// only once it is confirmed:
//
//  1. a TCP connect to the member's port fails with such an error,
//  2. two direct pings of the member, by name, go unanswered, and
//  3. a second TCP connect fails the same way.
//
// Then the member is hidden: it leaves this server's view (a Leave event)
// while memberlist's own timers still run. A hidden member comes back (a
// Join event) when it answers a ping by name again, or when memberlist sees
// it alive after declaring it dead. A live member always answers pings, and a
// new server on the old port answers to another name, so neither is hidden
// wrongly nor makes the old one reappear.

const (
	// confirmWorkers bounds the checks in flight.
	confirmWorkers = 8
	// confirmEvery is the least time between two checks of one address.
	confirmEvery = time.Second
	// connectTimeout bounds each TCP connect of a check.
	connectTimeout = time.Second
)

// kernelEvidence tells whether err is the kernel saying that nothing can be
// reached at the address: refused, or no route.
func kernelEvidence(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH)
}

// evidence takes the address of a failed send or dial, from the transport.
// It never blocks: evidence repeats, so some may be dropped.
func (c *Cluster) evidence(addr string, err error) {
	if !kernelEvidence(err) {
		return
	}
	select {
	case c.suspects <- addr:
	default:
	}
}

// confirmLoop runs checks of the addresses the transport reported, at most
// confirmWorkers at once and one per address per confirmEvery.
func (c *Cluster) confirmLoop() {
	sem := make(chan struct{}, confirmWorkers)
	last := map[string]time.Time{}
	for {
		var addr string
		select {
		case <-c.stop:
			return
		case addr = <-c.suspects:
		}
		now := time.Now()
		if now.Sub(last[addr]) < confirmEvery {
			continue
		}
		for a, t := range last { // keep the map small
			if now.Sub(t) > confirmEvery {
				delete(last, a)
			}
		}
		last[addr] = now
		m, ok := c.memberAt(addr)
		if !ok {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-c.stop:
			return
		}
		c.joiners.Add(1)
		go func() {
			defer func() { <-sem; c.joiners.Done() }()
			if c.confirmUnreachable(m) && c.hide(m, true) {
				c.log.Info("member leave: unreachable, confirmed", "id", m.ID.String(), "addr", m.Addr)
				c.watch.tellOthers(m)
			}
		}()
	}
}

// memberAt finds the visible member, other than this server, at addr.
func (c *Cluster) memberAt(addr string) (Member, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		if m.Addr == addr && m.ID != c.cfg.ID {
			return m, true
		}
	}
	return Member{}, false
}

// confirmUnreachable runs the three steps above. The two pings go out
// together, so the check takes one probe timeout.
func (c *Cluster) confirmUnreachable(m Member) bool {
	return c.connectFails(m.Addr) && !c.pingsAny(m) && c.connectFails(m.Addr)
}

// pingsAny sends two direct pings to m by name at once and tells whether
// either was answered.
func (c *Cluster) pingsAny(m Member) bool { return c.pingsAnyOf(m, 2) }

// pingsAnyOf sends n direct pings to m by name at once and tells whether
// any was answered. It takes one probe timeout.
func (c *Cluster) pingsAnyOf(m Member, n int) bool {
	answered := make(chan bool, n)
	for range n {
		go func() { answered <- c.pings(m) }()
	}
	ok := false
	for range n {
		ok = <-answered || ok
	}
	return ok
}

// starved tells whether this server is short of CPU right now: a 20 ms
// sleep woke more than starvedLag late. A starved server defers judging
// others, whose silence may be its own.
func (c *Cluster) starved() bool {
	const nap = 20 * time.Millisecond
	start := time.Now()
	time.Sleep(nap)
	lag := time.Since(start) - nap
	if lag <= starvedLag {
		return false
	}
	c.log.Info("judging a member deferred: this server is starved of CPU", "lag", lag.Round(time.Millisecond))
	return true
}

// connectFails tells whether a TCP connect to addr fails with kernel
// evidence. A timeout is not evidence.
func (c *Cluster) connectFails(addr string) bool { return kernelEvidence(c.connect(addr)) }

// portRefused tells whether a TCP connect to addr is refused: nothing
// listens there, so the process that did is gone for good. (Unreachable is
// not refused: a partition heals.)
func (c *Cluster) portRefused(addr string) bool {
	return errors.Is(c.connect(addr), syscall.ECONNREFUSED)
}

// connect opens and closes a TCP connection to addr, within
// connectTimeout, and returns why it failed, if it did.
func (c *Cluster) connect(addr string) error {
	ctx, cancel := context.WithTimeout(c.tr.dials, connectTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		conn.Close()
	}
	return err
}

// pings sends one direct ping to m by name and tells whether it answered.
func (c *Cluster) pings(m Member) bool {
	host, port, err := net.SplitHostPort(m.Addr)
	if err != nil {
		return false
	}
	p, _ := strconv.Atoi(port)
	_, err = c.ml.Ping(m.ID.String(), &net.UDPAddr{IP: net.ParseIP(host), Port: p})
	return err == nil
}

// hide takes a confirmed unreachable member out of the view, and tells
// whether it was in it. A member whose process is gone for good (its port
// refused, or another server answers there) is not tried again: IDs are
// per process. One that may return (silent, unanswering) is, by the
// reconnect loop.
func (c *Cluster) hide(m Member, mayReturn bool) bool {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	cur, ok := c.members[m.ID]
	if ok {
		delete(c.members, m.ID)
		c.hidden[m.ID] = cur
		if mayReturn {
			c.failed.add(m.ID, cur.Addr)
		}
	}
	c.mu.Unlock()
	if !ok {
		return false
	}
	c.emit(Event{Type: Leave, Member: cur})
	return true
}

// unhideIfAnswers pings a hidden member and, if it answers, brings it back.
func (c *Cluster) unhideIfAnswers(id ident.ID) {
	c.mu.Lock()
	m, ok := c.hidden[id]
	c.mu.Unlock()
	if !ok || !c.pings(m) {
		return
	}
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	m, ok = c.hidden[id]
	if ok {
		delete(c.hidden, id)
		delete(c.failed.m, id)
		c.members[id] = m
	}
	c.mu.Unlock()
	if ok {
		c.log.Info("member join: answers again", "id", id.String(), "addr", m.Addr)
		c.emit(Event{Type: Join, Member: m})
	}
}
