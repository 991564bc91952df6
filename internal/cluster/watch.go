package cluster

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/ident"
)

// A crashed server's process is gone, but its host's kernel is not: it
// closes the process's connections at once, and refuses connects to its
// port from then on. Memberlist learns of the crash only when its probes
// time out (about 5 s on the LAN preset). This file learns of it in the
// time of a round trip:
//
//   - Each server holds a watch connection (wire.KindWatch, which carries
//     nothing) to each of its watchSuccessors next servers in the ring of
//     visible members ordered by ID. So every server is watched by that many
//     others, whatever the size of the cluster.
//   - When a watch connection ends without this server closing it, the
//     watcher runs the confirmed check of confirm.go at once: the port
//     refuses, direct pings by name go unanswered, and the port still
//     refuses. Only then is the member hidden.
//   - The watcher then tells every member (a memberlist user message,
//     encrypted with the gossip key). A member hearing it hides the server
//     only if its own connect to the port is refused too: a report is never
//     acted on alone.
//   - A watch dialled to an address where another server now answers (a
//     restart on the same port) is refused as "not here": the old server is
//     gone, once a ping by its name confirms it.
//
// A hung or cut-off server (SIGSTOP, docker pause, a pulled cable) closes
// nothing, and its kernel may even go on answering TCP. So the watched
// server writes one byte on each watch connection every watchBeat, and a
// watch that stays silent for watchSilence is a suspicion: the member is
// hidden only if, while this server is not itself starved of CPU, three
// direct pings by name, sent together, all go unanswered. A receiver of the
// news checks the same way (or finds the port refused). A live server's
// port is never refused, and a live server answers at least one of three
// pings in a probe timeout unless the network loses nearly everything.

const (
	// watchSuccessors is how many servers each server watches. Three keeps
	// a crash seen while up to two of its watchers are gone with it.
	watchSuccessors = 3
	// watchRetry is how soon a failed watch is dialled again.
	watchRetry = 500 * time.Millisecond
	// watchDialTimeout bounds a watch dial.
	watchDialTimeout = 2 * time.Second
	// goneMsg starts the user message that reports a confirmed crash.
	goneMsg = "circuit-gone:"
	// watchBeat is how often a watched server writes on each watch. A beat
	// costs about 130 bytes on the wire with its acknowledgement, so three
	// watches each way make under 1 KiB/s per server.
	watchBeat = 500 * time.Millisecond
	// watchSilence is how long a watch may be silent before its server is
	// suspected: three beats. A server stopped for 200 ms every 2 s leaves
	// gaps of at most 0.7 s, and at 5% loss TCP's retransmissions (0.2,
	// 0.4, 0.8 s) bridge a silence this long only when three in a row are
	// lost; the pings then decide. Silence is judged on the beat tick, so a
	// lost host is seen within 1.5 s, one tick and two probe timeouts (one
	// here, one at each other server): 3 s at worst, 2.1-2.5 s measured.
	watchSilence = 3 * watchBeat
	// lostPings is how many pings, sent together, must all go unanswered
	// before a silent member is hidden: at 5% loss each way, a live one
	// fails all three with a chance of about one in a thousand.
	lostPings = 3
	// starvedLag is how late a 20 ms sleep may wake before this server
	// counts itself starved of CPU and defers judging others: Lifeguard's
	// local health awareness, measured directly.
	starvedLag = 150 * time.Millisecond
)

// HandleWatch serves another server's watch of this one until the watcher
// closes it or the cluster stops: the beat loop writes on it.
func (c *Cluster) HandleWatch(conn net.Conn) {
	w := c.watch
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		conn.Close()
		return
	}
	w.served[conn] = struct{}{}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.served, conn)
		w.mu.Unlock()
		conn.Close()
	}()
	if beat(conn) != nil { // at once, so the watcher hears from us before its first check
		return
	}
	var b [1]byte
	conn.Read(b[:]) // the watcher sends nothing: this returns when the connection ends
}

// watches keeps the watch connections of one server: those it holds on
// others, and those others hold on it.
type watches struct {
	c       *Cluster
	changed chan struct{} // a 1-buffered nudge: the view changed

	mu     sync.Mutex
	active map[ident.ID]*watch   // this server's watches of others
	served map[net.Conn]struct{} // others' watches of this server
	closed bool                  // the beat loop has ended
}

// watch is one watch connection this server holds on another.
type watch struct {
	m      Member
	cancel context.CancelFunc
	conn   net.Conn  // nil until dialled
	judged time.Time // silence is not judged again before this
	busy   bool      // a judgement of its silence is running
}

func newWatches(c *Cluster) *watches {
	return &watches{c: c, changed: make(chan struct{}, 1), active: map[ident.ID]*watch{}, served: map[net.Conn]struct{}{}}
}

// nudge asks the loop to recompute whom to watch.
func (w *watches) nudge() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// successors returns the k members after self in ID order, wrapping round
// (all the others, in ID order, when there are no more than k).
func successors(self ident.ID, members []Member, k int) []Member {
	ring := slices.DeleteFunc(slices.Clone(members), func(m Member) bool { return m.ID == self })
	slices.SortFunc(ring, func(a, b Member) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	if len(ring) <= k {
		return ring
	}
	i, _ := slices.BinarySearchFunc(ring, self, func(m Member, id ident.ID) int {
		return strings.Compare(m.ID.String(), id.String())
	})
	out := make([]Member, 0, k)
	for j := range k {
		out = append(out, ring[(i+j)%len(ring)])
	}
	return out
}

// loop keeps a watch on each successor until the cluster stops. It wakes
// only when the view changes or a watch ends.
func (w *watches) loop() {
	defer w.closeAll()
	for {
		w.update()
		select {
		case <-w.c.stop:
			return
		case <-w.changed:
		}
	}
}

func (w *watches) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, wt := range w.active {
		wt.cancel()
		delete(w.active, id)
	}
}

// update starts watches on new successors and ends those on others.
func (w *watches) update() {
	want := map[ident.ID]Member{}
	for _, m := range successors(w.c.cfg.ID, w.c.lanMembers(), watchSuccessors) {
		want[m.ID] = m
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, wt := range w.active {
		if _, ok := want[id]; !ok {
			wt.cancel()
			delete(w.active, id)
		}
	}
	for id, m := range want {
		if _, ok := w.active[id]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		wt := &watch{m: m, cancel: cancel}
		w.active[id] = wt
		w.c.joiners.Add(1)
		go func() {
			defer w.c.joiners.Done()
			w.run(ctx, wt)
			w.mu.Lock()
			if w.active[m.ID] == wt { // ended by itself: let update dial again
				delete(w.active, m.ID)
			}
			w.mu.Unlock()
			cancel()
			w.nudge()
		}()
	}
}

// run holds one watch connection until it ends, and acts on how it ended.
// Its silence is judged by the beat loop (checkSilence).
func (w *watches) run(ctx context.Context, wt *watch) {
	c, m := w.c, wt.m
	defer w.pause(ctx) // a watch that ended is not dialled again at once
	dctx, cancel := context.WithTimeout(ctx, watchDialTimeout)
	conn, err := c.cfg.DialWatch(dctx, m.Addr, m.ID)
	cancel()
	if err != nil {
		switch {
		case ctx.Err() != nil:
		case isNotHere(err):
			w.confirmReplaced(m)
		default: // refused, unreachable, or no answer in time
			w.confirmCrash(m)
		}
		return
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	quiet(conn)
	w.mu.Lock()
	wt.conn, wt.judged = conn, time.Now()
	w.mu.Unlock()
	buf := make([]byte, 4*beatsPerWake)
	for {
		if _, err := conn.Read(buf); err != nil {
			break
		}
	}
	if ctx.Err() == nil { // the watched server closed it, or its kernel did
		w.confirmCrash(m)
	}
}

// beatLoop beats on every watch this server serves and judges the silence
// of every watch it holds, all on one tick, so that an idle server wakes
// once per watchBeat for all of its watches.
func (w *watches) beatLoop() {
	t := time.NewTicker(watchBeat)
	defer t.Stop()
	for {
		select {
		case <-w.c.stop:
			w.mu.Lock()
			w.closed = true
			for conn := range w.served {
				conn.Close()
			}
			w.mu.Unlock()
			return
		case now := <-t.C:
			w.beatAll()
			w.checkSilence(now)
		}
	}
}

// beatAll writes one beat on each served watch; a watch that fails is
// closed, which ends its HandleWatch.
func (w *watches) beatAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for conn := range w.served {
		if err := beat(conn); err != nil {
			conn.Close()
		}
	}
}

// checkSilence starts a judgement of each held watch that has heard nothing
// for watchSilence.
func (w *watches) checkSilence(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, wt := range w.active {
		if wt.conn == nil || wt.busy || now.Before(wt.judged) {
			continue
		}
		if silent, ok := silentFor(wt.conn); !ok || silent < watchSilence {
			continue
		}
		wt.busy = true
		w.c.joiners.Add(1)
		go func() {
			defer w.c.joiners.Done()
			hidden := w.confirmLost(wt.m)
			w.mu.Lock()
			wt.busy, wt.judged = false, time.Now().Add(watchSilence)
			w.mu.Unlock()
			if hidden {
				wt.cancel()
			}
		}()
	}
}

// confirmLost decides about a member whose watch went silent: true if the
// watch should end (the member is hidden, or gone from the view already).
func (w *watches) confirmLost(m Member) bool {
	c := w.c
	if _, ok := c.lookupLAN(m.ID); !ok {
		return true
	}
	if c.starved() || c.pingsAnyOf(m, lostPings) || c.starved() {
		return false
	}
	if c.hide(m, true) {
		c.log.Info("member leave: silent and not answering pings, confirmed", "id", m.ID.String(), "addr", m.Addr)
		w.tellOthers(m)
	}
	return true
}

// pause waits watchRetry, so a failing dial is not retried at once.
func (w *watches) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(watchRetry):
	}
}

// isNotHere tells whether a dial was refused because the address now
// belongs to another server.
func isNotHere(err error) bool {
	var nh interface{ NotHere() bool }
	return errors.As(err, &nh) && nh.NotHere()
}

// confirmCrash checks a member whose watch ended or could not be made,
// and on success hides it and tells the others. A crashed process's port
// refuses (the confirmed check of confirm.go); a host that vanished with
// it (a killed container, a pulled cable) refuses nothing, and is judged
// as a silent one is, by pings.
func (w *watches) confirmCrash(m Member) {
	c := w.c
	if _, ok := c.lookupLAN(m.ID); !ok {
		return
	}
	why := "its process ended, confirmed"
	gone := c.confirmUnreachable(m)
	forGood := gone && c.portRefused(m.Addr)
	if !gone {
		why = "its host vanished: no answer to pings, confirmed"
		gone = !c.starved() && !c.pingsAnyOf(m, lostPings) && !c.starved()
	}
	if gone && c.hide(m, !forGood) {
		c.log.Info("member leave: "+why, "id", m.ID.String(), "addr", m.Addr)
		w.tellOthers(m)
	}
}

// confirmReplaced hides a member whose address another server answers
// from, once a ping by its name goes unanswered.
func (w *watches) confirmReplaced(m Member) {
	if _, ok := w.c.lookupLAN(m.ID); !ok || w.c.pingsAny(m) {
		return
	}
	if w.c.hide(m, false) {
		w.c.log.Info("member leave: another server took its address", "id", m.ID.String(), "addr", m.Addr)
		w.tellOthers(m)
	}
}

// tellAgain is when the news of a confirmed crash is sent again after the
// first time: it goes as one datagram to each member, and at 5% loss one
// member in twenty would miss a single copy and wait for memberlist's own
// verdict (10 s and more: tests/soak). A member that has the news already
// ignores the copies.
var tellAgain = []time.Duration{200 * time.Millisecond, 600 * time.Millisecond}

// tellOthers sends every member the news of a confirmed crash, now and
// again at tellAgain; with datacenters, the members of the others too.
func (w *watches) tellOthers(m Member) {
	msg := []byte(goneMsg + m.ID.String())
	send := func() {
		for _, n := range w.c.ml.Members() {
			if n.Name == w.c.cfg.ID.String() || n.Name == m.ID.String() {
				continue
			}
			if err := w.c.ml.SendBestEffort(n, msg); err != nil {
				w.c.log.Debug("telling of a crash", "to", n.Name, "err", err)
			}
		}
		if w.c.wan != nil {
			w.c.wan.tell(msg, m.ID)
		}
	}
	send()
	w.c.background(func() {
		start := time.Now()
		for _, at := range tellAgain {
			select {
			case <-w.c.stop:
				return
			case <-time.After(time.Until(start.Add(at))):
				send()
			}
		}
	})
}

// reported takes another server's news of a confirmed crash: the member is
// hidden here too if this server's connect to its port is refused as well.
func (w *watches) reported(id ident.ID) {
	m, ok := w.c.lookupLAN(id)
	if !ok {
		return
	}
	w.queue(report{m: m})
}

// report is a crash or loss another server reported, with how many times
// this server has deferred judging it.
type report struct {
	m        Member
	deferred int
}

// maxDeferred bounds how often a report is judged again because this
// server was starved of CPU: a beat apart, about 4 s in all, after which
// memberlist's own detection remains.
const maxDeferred = 8

// queue hands a report to reportLoop, unless it is busy.
func (w *watches) queue(r report) {
	select {
	case w.c.reports <- r:
	default: // busy: memberlist's own detection remains
	}
}

// goneHere is this server's own check of a reported crash or loss: the
// member's port refuses or another server answers there (a crash, known at
// once: gone for good), or, not starved, none of lostPings pings by name
// is answered. starved tells that the pings went unanswered but this
// server was starved of CPU, so it could not judge.
//
// The two checks race. goneHere answers as soon as one is decisive, so a
// crash is hidden without waiting for the pings, and returns join, which
// the caller runs after acting on the answer: it cancels the check still
// at work (its dial; the pings end within memberlist's ping timeout) and
// waits for both. The cluster's dials are canceled on Stop.
func (w *watches) goneHere(m Member) (gone, forGood, starved bool, join func()) {
	ctx, cancel := context.WithCancel(w.c.tr.dials)
	var checks sync.WaitGroup
	join = func() {
		cancel()
		checks.Wait()
	}
	pinged := make(chan bool, 1)
	checks.Go(func() { pinged <- w.c.pingsAnyOf(m, lostPings) })
	refused := make(chan bool, 1)
	checks.Go(func() { refused <- w.refusedOrReplaced(ctx, m) })
	for {
		select {
		case gone := <-refused:
			if gone {
				return true, w.c.portRefused(m.Addr), false, join
			}
			refused = nil // not decisive: the pings decide
		case answered := <-pinged:
			if answered {
				return false, false, false, join
			}
			starved := w.c.starved()
			return !starved, false, starved, join
		}
	}
}

// refusedOrReplaced tells whether the member's port refuses connects, or
// another server answers there.
func (w *watches) refusedOrReplaced(ctx context.Context, m Member) bool {
	if w.c.connectFails(m.Addr) {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, watchDialTimeout)
	defer cancel()
	conn, err := w.c.cfg.DialWatch(ctx, m.Addr, m.ID)
	if err != nil {
		return isNotHere(err)
	}
	conn.Close()
	return false
}

// reportLoop checks reported crashes one at a time.
func (w *watches) reportLoop() {
	for {
		select {
		case <-w.c.stop:
			return
		case r := <-w.c.reports:
			m := r.m
			if _, ok := w.c.lookupLAN(m.ID); !ok {
				continue
			}
			gone, forGood, starved, join := w.goneHere(m)
			if gone && w.c.hide(m, !forGood) {
				w.c.log.Info("member leave: its crash was reported and confirmed here", "id", m.ID.String(), "addr", m.Addr)
			}
			join() // the checks goneHere started end before the next report
			if starved && r.deferred < maxDeferred {
				// Judged again a beat later, when the CPU may be back.
				r.deferred++
				w.c.background(func() {
					select {
					case <-w.c.stop:
					case <-time.After(watchBeat):
						w.queue(r)
					}
				})
			}
		}
	}
}
