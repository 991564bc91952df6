// Package cluster owns membership: which servers are in the cluster, joining
// and leaving, and the ordered stream of join and leave events.
//
// It runs hashicorp/memberlist (SWIM gossip with Lifeguard) over a transport
// that shares the server's one port: gossip packets travel as UDP datagrams
// on the same port number as the server's TCP listener, and gossip streams
// arrive over that TCP listener, told apart from other connections by their
// preamble (package wire). With a cluster key, memberlist encrypts both with
// an AES-256 key derived from it.
//
// Each member's node name is its server ID; its metadata carries its PID.
package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/label"
)

// Member is one server as this server sees it.
type Member struct {
	ID     ident.ID
	Addr   string // advertised host:port
	PID    int
	Labels label.Set // nil when the server has none
	DC     string    // its datacenter; "" when it was started without one
}

// same tells whether two records describe the same member identically.
func (m Member) same(o Member) bool {
	return m.ID == o.ID && m.Addr == o.Addr && m.PID == o.PID && m.DC == o.DC && maps.Equal(m.Labels, o.Labels)
}

// URL is the member's circuit URL.
func (m Member) URL() ident.URL { return ident.URL{Addr: m.Addr, PID: m.PID, ID: m.ID} }

// EventType tells a join from a leave.
type EventType int

const (
	Join EventType = iota + 1
	Leave
)

func (t EventType) String() string {
	if t == Join {
		return "join"
	}
	return "leave"
}

// Event is a change of membership, in the order this server saw it.
type Event struct {
	Type   EventType
	Member Member
}

// Config configures a Cluster.
type Config struct {
	ID        ident.ID
	Advertise *net.TCPAddr // the server's one address
	PID       int
	Labels    label.Set // gossiped in the member's metadata
	// DC, when set, places the server in a datacenter (wan.go): it gossips
	// with its datacenter's servers on the Timing's timers, and with the
	// other datacenters' on the WAN timers.
	DC     string
	Timing Timing
	// GossipKeys, when set, encrypt gossip (AES-256, 32 bytes each): the
	// first encrypts, every one decrypts (a keyring in rotation:
	// SetGossipKeys); WANGossipKeys those of the pool spanning
	// datacenters. They differ, and
	// each pool has its own memberlist label (lanLabel, wanLabel), so
	// that packets of one pool are refused by the other.
	GossipKeys    [][]byte
	WANGossipKeys [][]byte
	// UDP is the packet socket, bound to the advertised port.
	UDP *net.UDPConn
	// DialStream opens a gossip stream to another server's address.
	DialStream func(ctx context.Context, addr string) (net.Conn, error)
	// DialWANStream opens a stream of the datacenter pool (with DC set).
	DialWANStream func(ctx context.Context, addr string) (net.Conn, error)
	// DialWatch opens a watch connection (watch.go) to the server id at
	// addr. Its error has a NotHere() bool method that is true when
	// another server answers at addr.
	DialWatch func(ctx context.Context, addr string, id ident.ID) (net.Conn, error)
	// OnEvent, if set, is called for every event, in order, from one
	// goroutine at a time; it must not block for long.
	OnEvent func(Event)
	// Shared, if set, is state every server holds a copy of (the
	// revocation list): its copy rides on every state exchange of both
	// pools, which joining servers make, and Share sends news of it to
	// every member at once.
	Shared Shared
	Logger *slog.Logger
}

// Shared is state that servers merge copies of, in any order and any
// number of times, to the same end.
type Shared interface {
	// Snapshot is this server's copy, as Merge reads it.
	Snapshot() []byte
	// Merge takes another server's copy, or news of one change. It must
	// not block for long.
	Merge(b []byte)
}

// Cluster is this server's view of, and part in, the membership.
type Cluster struct {
	cfg Config
	ml  *memberlist.Memberlist
	tr  *transport
	log *slog.Logger

	wan *wanPool // the datacenter pool, with Config.DC set
	// lanRing and wanRing are the pools' gossip keys (nil: plaintext).
	lanRing, wanRing *memberlist.Keyring

	mu      sync.Mutex
	members map[ident.ID]Member
	// remote holds the members of other datacenters, as the datacenter
	// pool lists them (wan.go).
	remote map[ident.ID]Member
	// failed holds members that failed (not left), so the reconnect loop
	// can try them until they answer: how a partition heals.
	failed failedSet
	// hidden holds members that memberlist still counts alive but that
	// the kernel's confirmed evidence took out of the view (confirm.go).
	hidden   map[ident.ID]Member
	suspects chan string // addresses the transport had kernel errors for
	reports  chan report // members other servers saw crash (watch.go)
	watch    *watches
	// evMu orders events: each change of the view and its OnEvent call
	// happen under it, whichever goroutine makes them.
	evMu    sync.Mutex
	joiners sync.WaitGroup
	stop    chan struct{}
	stopped bool
}

// New starts membership with this server alone in its cluster.
func New(cfg Config) (*Cluster, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	meta, _ := json.Marshal(nodeMeta{PID: cfg.PID, Labels: cfg.Labels, DC: cfg.DC})
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("the labels and datacenter take %d bytes of gossip metadata, more than the %d allowed: %w", len(meta), memberlist.MetaMaxSize, ErrLabelsTooLarge)
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger, members: map[ident.ID]Member{}, remote: map[ident.ID]Member{}, failed: newFailedSet(),
		hidden: map[ident.ID]Member{}, suspects: make(chan string, 64), reports: make(chan report, 64), stop: make(chan struct{})}
	c.watch = newWatches(c)
	var err error
	if c.lanRing, err = gossipRing(cfg.GossipKeys); err != nil {
		return nil, err
	}
	var wanTr *transport
	if cfg.DC != "" {
		c.wan = newWANPool(c)
		wanTr = c.wan.tr
	}
	c.tr = newTransport(cfg.UDP, cfg.Advertise, cfg.DialStream, c.evidence, cfg.Logger, wanTr)

	mc, timers := cfg.Timing.memberlistConfig()
	mc.Name = cfg.ID.String()
	mc.Transport = c.tr
	mc.BindAddr = cfg.Advertise.IP.String()
	mc.BindPort = cfg.Advertise.Port
	mc.AdvertiseAddr = cfg.Advertise.IP.String()
	mc.AdvertisePort = cfg.Advertise.Port
	mc.Keyring = c.lanRing
	mc.Label = lanLabel
	mc.Delegate = delegate{meta: meta, c: c}
	mc.Events = eventDelegate{c}
	mc.Alive, mc.Merge = dcFilter{cfg.DC}, dcFilter{cfg.DC}
	mc.DNSConfigPath = ""
	mc.Logger = log.New(&logWriter{cfg.Logger}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		c.tr.Shutdown()
		if c.wan != nil {
			c.wan.tr.Shutdown()
		}
		return nil, fmt.Errorf("starting membership: %w", err)
	}
	c.ml = ml
	interval := timers.reconnectEvery
	loops := []func(){func() { c.reconnectLoop(interval) }, c.confirmLoop, c.watch.beatLoop}
	if c.wan != nil {
		if err := c.wan.start(meta); err != nil {
			ml.Shutdown()
			c.tr.Shutdown()
			return nil, err
		}
		loops = append(loops, func() { c.wan.reconnectLoop(presets[WAN].reconnectEvery) })
	}
	if cfg.DialWatch != nil {
		loops = append(loops, c.watch.loop, c.watch.reportLoop)
	}
	c.joiners.Add(len(loops))
	for _, f := range loops {
		go func() {
			defer c.joiners.Done()
			f()
		}()
	}
	return c, nil
}

const (
	// reconnectFor is how long a failed member is tried before it is
	// forgotten.
	reconnectFor = 6 * time.Hour
	// reconnectPerTick bounds the members tried at each tick.
	reconnectPerTick = 3
	// reconnectChecks bounds the failed members whose ports are checked at
	// each tick (a connect each, at once): under churn at 5 kills a
	// second and a 2 s tick, 32 keeps the list from growing.
	reconnectChecks = 32
)

type failedMember struct {
	addr  string
	since time.Time
}

// failedSet holds members that failed (not left), with when, for a
// reconnect loop to try until they answer. Its map is guarded by
// Cluster.mu.
type failedSet struct {
	m     map[ident.ID]failedMember
	added chan struct{} // 1-buffered: wakes the loop when a member is added
}

func newFailedSet() failedSet {
	return failedSet{m: map[ident.ID]failedMember{}, added: make(chan struct{}, 1)}
}

// add records a failed member and wakes the loop; the caller holds c.mu.
func (f failedSet) add(id ident.ID, addr string) {
	f.m[id] = failedMember{addr: addr, since: time.Now()}
	select {
	case f.added <- struct{}{}:
	default:
	}
}

// anyFailed tells whether f holds a member to reconnect.
func (c *Cluster) anyFailed(f failedSet) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(f.m) > 0
}

// awaitFailed waits until a member is added to f: false if the cluster
// stopped first.
func (c *Cluster) awaitFailed(f failedSet) bool {
	select {
	case <-c.stop:
		return false
	case <-f.added:
		return true
	}
}

// reconnectLoop tries, every interval, to rejoin a few members that failed
// (as against left). Memberlist on its own never talks to a member again once
// it is declared dead, so without this a partition that outlasts the dead
// timers never heals. A join merges the two sides' state; each side then
// refutes the other's report of its death, and the next round brings the
// members back.
//
// While no member has failed it waits for one, not on a ticker: an
// idle, healthy server should not wake for nothing (docs/PERFORMANCE.md).
func (c *Cluster) reconnectLoop(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if !c.anyFailed(c.failed) {
			t.Stop()
			if !c.awaitFailed(c.failed) {
				return
			}
			t.Reset(interval)
		}
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		// Check the ports of many at once: a refused port is a process
		// gone for good, forgotten at once, so that under churn the list
		// holds only members that may come back. Then retry a few.
		targets := c.reconnectTargets(time.Now())
		refused := make([]bool, len(targets))
		var wg sync.WaitGroup
		for i, f := range targets {
			wg.Go(func() { refused[i] = c.portRefused(f.Addr) })
		}
		wg.Wait()
		tried := 0
		for i, f := range targets {
			if refused[i] {
				c.forget(f.ID) // a new process there would have a new ID
				continue
			}
			if tried == reconnectPerTick {
				continue
			}
			tried++
			c.unhideIfAnswers(f.ID)
			if err := c.joinLAN(f.Addr); err != nil {
				c.log.Debug("reconnect failed", "addr", f.Addr, "err", err)
			}
		}
	}
}

// forget stops trying a failed member.
func (c *Cluster) forget(id ident.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.failed.m, id)
}

// reconnectTargets forgets members failed for longer than reconnectFor and
// picks up to reconnectChecks of the rest at random, those hidden here
// (which memberlist still counts alive, so likelier to answer) first.
func (c *Cluster) reconnectTargets(now time.Time) []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	targets, expired := pickReconnect(c.failed.m, c.hidden, now, reconnectFor, reconnectChecks)
	for _, id := range expired {
		delete(c.failed.m, id)
		delete(c.hidden, id)
	}
	return targets
}

// pickReconnect is reconnectTargets' decision, at now: the failed members
// to forget, failed for longer than keep, and up to n of the others to try,
// in map order (random enough), those in hidden first.
func pickReconnect(failed map[ident.ID]failedMember, hidden map[ident.ID]Member, now time.Time, keep time.Duration, n int) (targets []Member, expired []ident.ID) {
	var others []Member
	for id, f := range failed {
		if now.Sub(f.since) > keep {
			expired = append(expired, id)
			continue
		}
		if _, ok := hidden[id]; ok {
			targets = append(targets, Member{ID: id, Addr: f.addr})
		} else {
			others = append(others, Member{ID: id, Addr: f.addr})
		}
	}
	targets = append(targets, others...)
	return targets[:min(len(targets), n)], expired
}

// The memberlist labels of the two pools: each pool's packets and streams
// carry its label (authenticated with the key), and a pool refuses the
// other's.
const (
	lanLabel = "circuit lan"
	wanLabel = "circuit wan"
)

// ErrLabelsTooLarge is New's error for labels that do not fit in a
// member's gossip metadata.
var ErrLabelsTooLarge = errors.New("labels too large")

// nodeMeta is what a member gossips about itself, in memberlist's node
// metadata (at most memberlist.MetaMaxSize bytes, checked by New).
type nodeMeta struct {
	PID    int       `json:"pid"`
	Labels label.Set `json:"labels,omitempty"`
	DC     string    `json:"dc,omitempty"`
}

// HandleStream takes a gossip stream accepted by the server's listener.
func (c *Cluster) HandleStream(conn net.Conn) { c.tr.handleStream(conn) }

// InDC tells whether this server is in a datacenter, and so takes streams
// of the datacenter pool.
func (c *Cluster) InDC() bool { return c.wan != nil }

// HandleWANStream takes a stream of the datacenter pool; the caller checks
// InDC first.
func (c *Cluster) HandleWANStream(conn net.Conn) { c.wan.tr.handleStream(conn) }

// Members returns the live members, this server included, sorted by ID:
// its LAN pool's and, in a datacenter, the other datacenters'.
func (c *Cluster) Members() []Member { return c.sorted(c.members, c.remote) }

// lanMembers returns the live members of this server's LAN pool.
func (c *Cluster) lanMembers() []Member { return c.sorted(c.members) }

func (c *Cluster) sorted(sets ...map[ident.ID]Member) []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Member
	for _, set := range sets {
		for _, m := range set {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return out
}

// Lookup finds a live member by ID.
func (c *Cluster) Lookup(id ident.ID) (Member, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.members[id]
	if !ok {
		m, ok = c.remote[id]
	}
	return m, ok
}

// lookupLAN finds a live member of this server's LAN pool by ID.
func (c *Cluster) lookupLAN(id ident.ID) (Member, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.members[id]
	return m, ok
}

// Join joins the cluster of the server at addr (host:port) once, then
// announces this server's view to the other members in the background
// (announce). The announce is what merges two clusters at once: gossip
// alone brought the other side to this server's old members only after a
// push-pull, up to 30 s later when gossip packets were lost under load.
func (c *Cluster) Join(addr string) error {
	if err := c.joinOnce(addr); err != nil {
		return err
	}
	c.background(func() { c.announce(addr) })
	return nil
}

// joinOnce joins through the server at addr once. In a datacenter, that
// joins the datacenter pool, then this datacenter's LAN pool through
// members of it that the datacenter pool lists, if there are any yet.
func (c *Cluster) joinOnce(addr string) error {
	if c.wan == nil {
		return c.joinLAN(addr)
	}
	if err := c.wan.join(addr); err != nil {
		return err
	}
	seeds := c.wan.sameDC()
	if len(seeds) == 0 {
		return nil // the first of its datacenter, or all of them met
	}
	var errs []string
	for _, a := range seeds[:min(len(seeds), 3)] {
		err := c.joinLAN(a)
		if err == nil {
			return nil
		}
		errs = append(errs, err.Error())
	}
	return fmt.Errorf("joined the datacenter pool through %s, but no server of datacenter %q answered: %s", addr, c.cfg.DC, strings.Join(errs, "; "))
}

// joinLAN makes one push-pull exchange with the server at addr in the LAN
// pool.
func (c *Cluster) joinLAN(addr string) error {
	if _, err := c.ml.Join([]string{addr}); err != nil {
		return fmt.Errorf("joining %s: %s", addr, oneLine(err))
	}
	return nil
}

// oneLine flattens memberlist's multierror, which spans lines, so that log
// lines stay whole.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// background runs f on a goroutine that Leave waits for, unless the
// cluster is stopping.
func (c *Cluster) background(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped {
		c.joiners.Go(f)
	}
}

// JoinRetry joins the cluster of the server at addr in the background,
// retrying with backoff until it succeeds or the cluster stops, so the same
// command line works whichever server comes up first.
func (c *Cluster) JoinRetry(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.joiners.Add(1)
	go func() {
		defer c.joiners.Done()
		wait := 100 * time.Millisecond
		for attempt := 1; ; attempt++ {
			err := c.joinOnce(addr)
			if err == nil {
				c.log.Info("joined", "addr", addr, "attempts", attempt)
				c.announce(addr)
				return
			}
			c.log.Warn("join failed; will retry", "addr", addr, "attempt", attempt, "retry_in", wait, "err", err)
			select {
			case <-c.stop:
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, 10*time.Second)
		}
	}()
}

const (
	// announceTo bounds the members a new server exchanges state with
	// directly, counting only those that answer (announce); the rest learn
	// of it by gossip from them.
	announceTo = 32
	// announceFanout bounds those exchanges in flight at once.
	announceFanout = 8
	// byeMsg starts the user message with which a leaving server tells
	// each member directly that it is going.
	byeMsg = "circuit-bye:"
)

// announce exchanges state (a memberlist push-pull) with up to announceTo
// of the members this server learned by joining through via, so that each
// lists it at once rather than after rounds of gossip, which at the LAN
// gossip interval would take a second or more. Under churn most of the
// members memberlist lists may be dead already (it keeps a crashed member
// for seconds), so it counts only the exchanges that succeed: a dead
// member's port refuses at once.
func (c *Cluster) announce(via string) {
	var addrs []string
	for _, n := range c.ml.Members() {
		if a := n.Address(); n.Name != c.cfg.ID.String() && a != via {
			addrs = append(addrs, a)
		}
	}
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	sem := make(chan struct{}, announceFanout)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	defer wg.Wait() // on every return: the exchanges in flight belong to this call
	for _, a := range addrs {
		select {
		case <-c.stop:
			return
		case sem <- struct{}{}:
		}
		mu.Lock()
		enough := done >= announceTo
		mu.Unlock()
		if enough {
			<-sem
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := c.ml.Join([]string{a}); err != nil {
				c.log.Debug("announcing", "to", a, "err", err)
				return
			}
			mu.Lock()
			done++
			mu.Unlock()
		})
	}
}

// sayBye tells every member directly that this server is going, so that
// each takes it out of its view at once, before gossip brings the news.
func (c *Cluster) sayBye() {
	msg := []byte(byeMsg + c.cfg.ID.String())
	for _, n := range c.ml.Members() {
		if n.Name == c.cfg.ID.String() {
			continue
		}
		if err := c.ml.SendBestEffort(n, msg); err != nil {
			c.log.Debug("saying goodbye", "to", n.Name, "err", err)
		}
	}
}

// gossipRing makes a pool's keyring from its keys, the first in use; nil
// for none.
func gossipRing(keys [][]byte) (*memberlist.Keyring, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	r, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keys: %w", err)
	}
	return r, nil
}

// SetGossipKeys changes the keys of both pools, as Config.GossipKeys and
// WANGossipKeys: the first encrypts from now on, every one decrypts, and
// keys not given are dropped. A pool started without keys stays without.
func (c *Cluster) SetGossipKeys(lan, wan [][]byte) error {
	for _, p := range []struct {
		r    *memberlist.Keyring
		keys [][]byte
	}{{c.lanRing, lan}, {c.wanRing, wan}} {
		if p.r == nil || len(p.keys) == 0 {
			continue
		}
		for _, k := range p.keys {
			if err := p.r.AddKey(k); err != nil {
				return fmt.Errorf("gossip keys: %w", err)
			}
		}
		if err := p.r.UseKey(p.keys[0]); err != nil {
			return fmt.Errorf("gossip keys: %w", err)
		}
		for _, old := range p.r.GetKeys() {
			if !slices.ContainsFunc(p.keys, func(k []byte) bool { return bytes.Equal(k, old) }) {
				if err := p.r.RemoveKey(old); err != nil {
					return fmt.Errorf("gossip keys: %w", err)
				}
			}
		}
	}
	return nil
}

// shareMsg starts the user message that carries news of the shared state.
const shareMsg = "circuit-share:"

// Share sends news of the shared state (Config.Shared's Merge form) to every
// member, of both pools, now and again at tellAgain, as crashes are told:
// each takes it at once rather than at its next state exchange. news must
// fit a datagram (about 1 KiB); the exchanges carry the rest.
func (c *Cluster) Share(news []byte) {
	msg := append([]byte(shareMsg), news...)
	send := func() {
		for _, n := range c.ml.Members() {
			if n.Name == c.cfg.ID.String() {
				continue
			}
			if err := c.ml.SendBestEffort(n, msg); err != nil {
				c.log.Debug("sharing state", "to", n.Name, "err", err)
			}
		}
		if c.wan != nil {
			c.wan.tell(msg, c.cfg.ID)
		}
	}
	send()
	c.background(func() {
		start := time.Now()
		for _, at := range tellAgain {
			select {
			case <-c.stop:
				return
			case <-time.After(time.Until(start.Add(at))):
			}
			send()
		}
	})
}

// saidBye takes a member's goodbye: it leaves the view now, for good (it
// will come back, if ever, as a new process with a new ID).
func (c *Cluster) saidBye(id ident.ID) {
	m, ok := c.lookupLAN(id)
	if !ok {
		return
	}
	c.background(func() { // not on memberlist's packet handler, which must not block
		if c.hide(m, false) {
			c.log.Info("member leave: it said goodbye", "id", id.String(), "addr", m.Addr)
		}
	})
}

// Leave tells the others that this server is going, waits up to timeout for
// the news to spread, and stops membership. It is idempotent.
func (c *Cluster) Leave(timeout time.Duration) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	close(c.stop)
	c.mu.Unlock()
	c.tr.cancelDials() // joins in flight give up now
	if c.wan != nil {
		c.wan.tr.cancelDials()
	}
	c.joiners.Wait()
	if c.wan != nil {
		c.wan.leave(timeout)
	}
	c.sayBye()
	if err := c.ml.Leave(timeout); err != nil {
		c.log.Warn("leave broadcast", "err", err)
	}
	if err := c.ml.Shutdown(); err != nil {
		c.log.Warn("membership shutdown", "err", err)
	}
}

// event applies memberlist's news of n. rejoined is set for a member that
// memberlist saw come back alive, as against an update of its metadata.
func (c *Cluster) event(t EventType, n *memberlist.Node, rejoined bool) {
	m, _, err := memberOf(n)
	if err != nil {
		c.log.Warn("ignoring member with a foreign name", "name", n.Name)
		return
	}
	id := m.ID
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	_, had := c.members[id]
	_, hidden := c.hidden[id]
	rule := eventRule(t, rejoined, had, hidden, id == c.cfg.ID, c.stopped)
	switch rule.change {
	case updateHidden:
		c.hidden[id] = m
	case enter:
		delete(c.hidden, id)
		c.members[id] = m
		delete(c.failed.m, id)
		for oid, o := range c.members {
			if o.Addr != m.Addr || oid == id || c.stopped {
				continue
			}
			// Two servers at one address: the older is gone. Whichever
			// fails to answer a ping by its name is hidden; this server
			// itself answers, so it checks only the other.
			for _, stale := range []Member{o, m} {
				if stale.ID == c.cfg.ID {
					continue
				}
				c.joiners.Add(1)
				go func() {
					defer c.joiners.Done()
					c.watch.confirmReplaced(stale)
				}()
			}
		}
	case exit:
		delete(c.members, id)
		delete(c.hidden, id)
		if rule.failed {
			c.failed.add(id, m.Addr)
		}
	}
	// (Added to joiners under mu, so that Leave, which sets stopped under
	// mu, waits for the check.)
	if rule.check {
		c.joiners.Add(1)
	}
	c.mu.Unlock()
	if !rule.report {
		return
	}
	if rule.check {
		go func() {
			defer c.joiners.Done()
			if c.confirmUnreachable(m) && c.hide(m, !c.portRefused(m.Addr)) {
				c.log.Info("member leave: listed by gossip, but its process is gone, confirmed", "id", id.String(), "addr", m.Addr)
			}
		}()
	}
	if id != c.cfg.ID {
		c.log.Info("member "+t.String(), "id", id.String(), "addr", m.Addr)
	}
	c.emit(Event{Type: t, Member: m})
}

// viewChange is what memberlist's news of a member does to the view.
type viewChange int

const (
	// updateHidden replaces the record of a member still hidden (an
	// update of one still unreachable), which stays out of view.
	updateHidden viewChange = iota + 1
	// enter puts the member in view (new, back, or updated), no longer
	// hidden or failed.
	enter
	// exit takes the member out of view, and out of the hidden.
	exit
)

// eventOutcome is eventRule's decision.
type eventOutcome struct {
	change viewChange
	report bool // subscribers get an Event of the news's type
	failed bool // the member is tried again by the reconnect loop
	check  bool // the member's port is checked once
}

// eventRule is the join/leave rule: what memberlist's news of type t about a
// member does, given whether memberlist saw it come back alive (rejoined,
// as against an update of its metadata), whether it was in view here (had)
// or hidden, whether it is this server (self), and whether membership is
// stopping.
//
// A join of a hidden member is only an update of its record unless it came
// back alive. Subscribers hear of a member entering the view that was not in
// it, and of one leaving that was; never of an update. memberlist does not
// say whether a member failed or left (it never sets the Node's State), so
// another member leaving the view is tried again: the reconnect loop forgets
// it once its port refuses. One that said goodbye, or was hidden, is out of
// view already and was dealt with then. Gossip can bring news of a server
// that has already crashed (a new member learns the others from a peer that
// has not noticed yet), so another server entering the view has its port
// checked once, unless membership is stopping.
func eventRule(t EventType, rejoined, had, hidden, self, stopped bool) eventOutcome {
	switch {
	case t == Join && hidden && !rejoined:
		return eventOutcome{change: updateHidden}
	case t == Join:
		return eventOutcome{change: enter, report: !had, check: !had && !self && !stopped}
	default:
		return eventOutcome{change: exit, report: had, failed: had && !self}
	}
}

// emit hands an event to OnEvent; the caller holds evMu.
func (c *Cluster) emit(e Event) {
	c.watch.nudge()
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(e)
	}
}

// eventDelegate receives memberlist's callbacks, which it makes one at a
// time, in order.
type eventDelegate struct{ c *Cluster }

func (d eventDelegate) NotifyJoin(n *memberlist.Node)   { d.c.event(Join, n, true) }
func (d eventDelegate) NotifyLeave(n *memberlist.Node)  { d.c.event(Leave, n, false) }
func (d eventDelegate) NotifyUpdate(n *memberlist.Node) { d.c.event(Join, n, false) }

// delegate gives memberlist this server's metadata and takes the news of
// confirmed crashes (watch.go) and goodbyes; circuit gossips nothing else.
// wan marks the datacenter pool's, which takes only crash news, of
// members of other datacenters (wan.go).
type delegate struct {
	meta []byte
	c    *Cluster
	wan  bool
}

func (d delegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}
func (d delegate) NotifyMsg(b []byte) {
	if name, ok := strings.CutPrefix(string(b), goneMsg); ok {
		id, err := ident.ParseID(name)
		switch {
		case err != nil || id == d.c.cfg.ID:
		case d.wan:
			d.c.wan.reported(id)
		default:
			d.c.watch.reported(id)
		}
		return
	}
	if news, ok := bytes.CutPrefix(b, []byte(shareMsg)); ok {
		if d.c.cfg.Shared != nil {
			d.c.cfg.Shared.Merge(news)
		}
		return
	}
	if d.wan {
		return
	}
	if name, ok := strings.CutPrefix(string(b), byeMsg); ok {
		if id, err := ident.ParseID(name); err == nil && id != d.c.cfg.ID {
			d.c.saidBye(id)
		}
	}
}
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }

func (d delegate) LocalState(bool) []byte {
	if d.c.cfg.Shared == nil {
		return nil
	}
	return d.c.cfg.Shared.Snapshot()
}

func (d delegate) MergeRemoteState(buf []byte, _ bool) {
	if d.c.cfg.Shared != nil && len(buf) > 0 {
		d.c.cfg.Shared.Merge(buf)
	}
}

// logWriter turns memberlist's "[LEVEL] memberlist: ..." lines into slog
// records.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[INFO]": slog.LevelInfo} {
		if strings.HasPrefix(line, prefix) {
			level, line = l, strings.TrimSpace(strings.TrimPrefix(line, prefix))
			break
		}
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
