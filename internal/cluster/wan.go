package cluster

// Several datacenters. A server started with a datacenter name (Config.DC)
// takes part in two memberlist pools on its one port:
//
//   - the LAN pool of its own datacenter, with the LAN timers, the watches
//     and the kernel checks of the rest of this package; servers of other
//     datacenters are refused from it (dcFilter);
//   - the datacenter pool, which every server with a datacenter joins,
//     with timers tuned for long links (the WAN preset in timing.go).
//
// The view is the LAN pool's members plus the datacenter pool's members of
// other datacenters. A server joins the datacenter pool through whatever
// address it is given, then its own datacenter's LAN pool through a member
// of that datacenter that the datacenter pool lists.

import (
	"encoding/json"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/circuit-project/circuit/internal/ident"
)

// wanPool is a server's part in the datacenter pool.
type wanPool struct {
	c  *Cluster
	ml *memberlist.Memberlist
	tr *transport
	// failed holds members of other datacenters that failed (not left),
	// retried every reconnectEvery so that a cut link heals; under c.mu.
	failed failedSet
}

// newWANPool makes the datacenter pool's transport; start creates its
// memberlist once the LAN transport, which reads the socket, exists.
func newWANPool(c *Cluster) *wanPool {
	w := &wanPool{c: c, failed: newFailedSet()}
	w.tr = newPoolTransport(wanTag, c.cfg.UDP, c.cfg.Advertise, c.cfg.DialWANStream, func(addr string, err error) {
		c.log.Debug("datacenter pool: send failed", "addr", addr, "err", err)
	}, c.log)
	return w
}

func (w *wanPool) start(meta []byte) error {
	c := w.c
	mc := wanConfig()
	mc.Name = c.cfg.ID.String()
	mc.Transport = w.tr
	mc.BindAddr = c.cfg.Advertise.IP.String()
	mc.BindPort = c.cfg.Advertise.Port
	mc.AdvertiseAddr = c.cfg.Advertise.IP.String()
	mc.AdvertisePort = c.cfg.Advertise.Port
	var err error
	if c.wanRing, err = gossipRing(c.cfg.WANGossipKeys); err != nil {
		w.tr.Shutdown()
		return err
	}
	mc.Keyring = c.wanRing
	mc.Label = wanLabel
	mc.Delegate = delegate{meta: meta, c: c, wan: true}
	mc.Events = wanEvents{w}
	mc.DNSConfigPath = ""
	mc.Logger = log.New(&logWriter{c.log.With("pool", "datacenters")}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		w.tr.Shutdown()
		return fmt.Errorf("starting the datacenter pool: %w", err)
	}
	w.ml = ml
	return nil
}

// join makes one push-pull exchange with the server at addr in the
// datacenter pool.
func (w *wanPool) join(addr string) error {
	if _, err := w.ml.Join([]string{addr}); err != nil {
		return fmt.Errorf("joining the datacenter pool at %s: %s", addr, oneLine(err))
	}
	return nil
}

// sameDC returns the addresses of the members of this server's datacenter
// that the datacenter pool lists and the LAN view does not, shuffled.
func (w *wanPool) sameDC() []string {
	var out []string
	for _, n := range w.ml.Members() {
		m, dc, err := memberOf(n)
		if err != nil || dc != w.c.cfg.DC || m.ID == w.c.cfg.ID {
			continue
		}
		if _, ok := w.c.lookupLAN(m.ID); !ok {
			out = append(out, m.Addr)
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// event applies the datacenter pool's news of n. Members of this server's
// own datacenter are the LAN pool's business, except that one it has not
// met is joined: two servers of a datacenter that started at once through
// another datacenter each found no one of theirs, and this merges them.
func (w *wanPool) event(t EventType, n *memberlist.Node, fresh bool) {
	c := w.c
	m, dc, err := memberOf(n)
	if err != nil {
		c.log.Warn("datacenter pool: ignoring member with a foreign name", "name", n.Name)
		return
	}
	if m.ID == c.cfg.ID {
		return
	}
	if dc == c.cfg.DC {
		if t == Join && fresh {
			c.background(func() {
				if _, ok := c.lookupLAN(m.ID); ok {
					return
				}
				if err := c.joinLAN(m.Addr); err != nil {
					c.log.Debug("joining a server of this datacenter met in the datacenter pool", "addr", m.Addr, "err", err)
				}
			})
		}
		return
	}
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	old, had := c.remote[m.ID]
	if t == Join {
		c.remote[m.ID] = m
		delete(w.failed.m, m.ID)
	} else {
		// memberlist does not tell a failure from a leave here (the
		// node's State is not set), so every member that leaves is tried
		// again, and forgotten once its port refuses (reconnectLoop).
		delete(c.remote, m.ID)
		w.failed.add(m.ID, m.Addr)
	}
	c.mu.Unlock()
	if had == (t == Join) {
		if had && !old.same(m) {
			c.log.Info("member update", "id", m.ID.String(), "dc", dc)
		}
		return
	}
	c.log.Info("member "+t.String(), "id", m.ID.String(), "addr", m.Addr, "dc", dc)
	c.emit(Event{Type: t, Member: m})
}

// reported takes the news, from a server of another datacenter, that a
// member of that datacenter crashed (confirmed there by the watches): it
// leaves the view here too if its port refuses this server's connect as
// well, seconds before the datacenter pool's own verdict. A host that
// vanished refuses nothing, and is left to that verdict.
func (w *wanPool) reported(id ident.ID) {
	c := w.c
	c.mu.Lock()
	m, ok := c.remote[id]
	c.mu.Unlock()
	if !ok {
		return
	}
	c.background(func() { // not on memberlist's packet handler
		if !c.portRefused(m.Addr) {
			return
		}
		c.evMu.Lock()
		defer c.evMu.Unlock()
		c.mu.Lock()
		_, had := c.remote[id]
		delete(c.remote, id)
		c.mu.Unlock()
		if had {
			c.log.Info("member leave: its crash was reported from its datacenter and its port refuses here too", "id", id.String(), "addr", m.Addr, "dc", m.DC)
			c.emit(Event{Type: Leave, Member: m})
		}
	})
}

// tell sends msg to every member of other datacenters.
func (w *wanPool) tell(msg []byte, skip ident.ID) {
	for _, n := range w.ml.Members() {
		m, dc, err := memberOf(n)
		if err != nil || dc == w.c.cfg.DC || m.ID == skip {
			continue
		}
		if err := w.ml.SendBestEffort(n, msg); err != nil {
			w.c.log.Debug("datacenter pool: telling of a crash", "to", n.Name, "err", err)
		}
	}
}

// reconnectLoop tries again, every interval, a few members of other
// datacenters that failed, as the LAN pool's loop does for its own: a cut
// link between datacenters heals once a join gets through.
func (w *wanPool) reconnectLoop(interval time.Duration) {
	c := w.c
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if !c.anyFailed(w.failed) && !c.awaitFailed(w.failed) {
			return
		}
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		var try []Member
		c.mu.Lock()
		for id, f := range w.failed.m {
			if now.Sub(f.since) > reconnectFor {
				delete(w.failed.m, id)
				continue
			}
			try = append(try, Member{ID: id, Addr: f.addr})
		}
		c.mu.Unlock()
		rand.Shuffle(len(try), func(i, j int) { try[i], try[j] = try[j], try[i] })
		for _, m := range try[:min(len(try), reconnectPerTick)] {
			if c.portRefused(m.Addr) {
				c.mu.Lock()
				delete(w.failed.m, m.ID) // its process is gone: it left, or crashed
				c.mu.Unlock()
				continue
			}
			if err := w.join(m.Addr); err != nil {
				c.log.Debug("datacenter pool: reconnect failed", "addr", m.Addr, "err", err)
			}
		}
	}
}

// leave tells the datacenter pool this server is going and stops it.
func (w *wanPool) leave(timeout time.Duration) {
	if err := w.ml.Leave(timeout); err != nil {
		w.c.log.Warn("datacenter pool: leave broadcast", "err", err)
	}
	if err := w.ml.Shutdown(); err != nil {
		w.c.log.Warn("datacenter pool: shutdown", "err", err)
	}
}

// wanEvents receives the datacenter pool's callbacks.
type wanEvents struct{ w *wanPool }

func (d wanEvents) NotifyJoin(n *memberlist.Node)   { d.w.event(Join, n, true) }
func (d wanEvents) NotifyLeave(n *memberlist.Node)  { d.w.event(Leave, n, false) }
func (d wanEvents) NotifyUpdate(n *memberlist.Node) { d.w.event(Join, n, false) }

// memberOf reads a memberlist node as a Member and its datacenter.
func memberOf(n *memberlist.Node) (Member, string, error) {
	id, err := ident.ParseID(n.Name)
	if err != nil {
		return Member{}, "", err
	}
	var meta nodeMeta
	_ = json.Unmarshal(n.Meta, &meta) // absent metadata leaves PID 0
	m := Member{ID: id, Addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), PID: meta.PID, Labels: meta.Labels, DC: meta.DC}
	return m, meta.DC, nil
}

// dcFilter keeps a LAN pool to one datacenter: memberlist drops news of a
// server of another datacenter, and a join that would merge one in fails.
type dcFilter struct{ dc string }

func (f dcFilter) check(n *memberlist.Node) error {
	var meta nodeMeta
	_ = json.Unmarshal(n.Meta, &meta)
	if meta.DC != f.dc {
		return fmt.Errorf("server %s is in %s, this one in %s: servers with and without -dc do not mix, and datacenters meet only through the datacenter pool", n.Name, dcName(meta.DC), dcName(f.dc))
	}
	return nil
}

// dcName names a datacenter for a message.
func dcName(dc string) string {
	if dc == "" {
		return "no datacenter (started without -dc)"
	}
	return fmt.Sprintf("datacenter %q", dc)
}

func (f dcFilter) NotifyAlive(n *memberlist.Node) error { return f.check(n) }

func (f dcFilter) NotifyMerge(nodes []*memberlist.Node) error {
	for _, n := range nodes {
		if err := f.check(n); err != nil {
			return err
		}
	}
	return nil
}
