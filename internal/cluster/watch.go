package cluster

import (
	"context"
	"errors"
	"io"
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
// A hung or cut-off server (SIGSTOP, a pulled cable) closes nothing, so it
// is left to memberlist's probes; a live server never has its port refused.

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
)

// watches keeps the watch connections of one server.
type watches struct {
	c       *Cluster
	changed chan struct{} // a 1-buffered nudge: the view changed

	mu     sync.Mutex
	active map[ident.ID]context.CancelFunc
}

func newWatches(c *Cluster) *watches {
	return &watches{c: c, changed: make(chan struct{}, 1), active: map[ident.ID]context.CancelFunc{}}
}

// nudge asks the loop to recompute whom to watch.
func (w *watches) nudge() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// successors returns the watchSuccessors members after self in ID order.
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

// loop keeps a watch on each successor until the cluster stops.
func (w *watches) loop() {
	t := time.NewTicker(watchRetry)
	defer t.Stop()
	defer w.closeAll()
	for {
		w.update()
		select {
		case <-w.c.stop:
			return
		case <-w.changed:
		case <-t.C:
		}
	}
}

func (w *watches) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, cancel := range w.active {
		cancel()
		delete(w.active, id)
	}
}

// update starts watches on new successors and ends those on others.
func (w *watches) update() {
	want := map[ident.ID]Member{}
	for _, m := range successors(w.c.cfg.ID, w.c.Members(), watchSuccessors) {
		want[m.ID] = m
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, cancel := range w.active {
		if _, ok := want[id]; !ok {
			cancel()
			delete(w.active, id)
		}
	}
	for id, m := range want {
		if _, ok := w.active[id]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		w.active[id] = cancel
		w.c.joiners.Add(1)
		go func() {
			defer w.c.joiners.Done()
			w.watch(ctx, m)
			w.mu.Lock()
			if ctx.Err() == nil { // ended by itself: let update dial again
				delete(w.active, m.ID)
			}
			w.mu.Unlock()
			cancel()
		}()
	}
}

// watch holds one watch connection to m until it ends, and acts on how it
// ended.
func (w *watches) watch(ctx context.Context, m Member) {
	c := w.c
	dctx, cancel := context.WithTimeout(ctx, watchDialTimeout)
	conn, err := c.cfg.DialWatch(dctx, m.Addr, m.ID)
	cancel()
	if err != nil {
		switch {
		case ctx.Err() != nil:
		case isNotHere(err):
			w.confirmReplaced(m)
		case kernelEvidence(err):
			w.confirmCrash(m)
		}
		w.pause(ctx)
		return
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	io.Copy(io.Discard, conn) // returns when either side closes it
	conn.Close()
	if ctx.Err() != nil {
		return // we closed it
	}
	w.confirmCrash(m)
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

// confirmCrash runs the confirmed check on a member whose watch ended, and
// on success hides it and tells the others.
func (w *watches) confirmCrash(m Member) {
	if _, ok := w.c.Lookup(m.ID); !ok || !w.c.confirmUnreachable(m) {
		return
	}
	if w.c.hide(m) {
		w.c.log.Info("member leave: its process ended, confirmed", "id", m.ID.String(), "addr", m.Addr)
		w.tellOthers(m)
	}
}

// confirmReplaced hides a member whose address another server answers
// from, once a ping by its name goes unanswered.
func (w *watches) confirmReplaced(m Member) {
	if _, ok := w.c.Lookup(m.ID); !ok || w.c.pingsAny(m) {
		return
	}
	if w.c.hide(m) {
		w.c.log.Info("member leave: another server took its address", "id", m.ID.String(), "addr", m.Addr)
		w.tellOthers(m)
	}
}

// tellOthers sends every member the news of a confirmed crash.
func (w *watches) tellOthers(m Member) {
	msg := []byte(goneMsg + m.ID.String())
	for _, n := range w.c.ml.Members() {
		if n.Name == w.c.cfg.ID.String() || n.Name == m.ID.String() {
			continue
		}
		if err := w.c.ml.SendBestEffort(n, msg); err != nil {
			w.c.log.Debug("telling of a crash", "to", n.Name, "err", err)
		}
	}
}

// reported takes another server's news of a confirmed crash: the member is
// hidden here too if this server's connect to its port is refused as well.
func (w *watches) reported(id ident.ID) {
	m, ok := w.c.Lookup(id)
	if !ok {
		return
	}
	select {
	case w.c.reports <- m:
	default: // busy: memberlist's own detection remains
	}
}

// goneHere is this server's own check of a reported crash: the member's
// port refuses, or another server answers there.
func (w *watches) goneHere(m Member) bool {
	if w.c.connectFails(m.Addr) {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), watchDialTimeout)
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
		case m := <-w.c.reports:
			if _, ok := w.c.Lookup(m.ID); ok && w.goneHere(m) && w.c.hide(m) {
				w.c.log.Info("member leave: its crash was reported and confirmed here", "id", m.ID.String(), "addr", m.Addr)
			}
		}
	}
}
