package cluster

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// Timing selects a preset of membership timers: every timer of this
// package that depends on the kind of network is in one preset below, with
// the measurement it rests on. The watch timers (watch.go) and the
// confirmation timers (confirm.go) are the same under every preset: they
// rest on the kernel and on a beat that costs nothing, not on the network.
type Timing string

const (
	// LAN is the default, for servers on separate hosts.
	LAN Timing = "lan"
	// Local is for clusters on one machine, as in tests.
	Local Timing = "local"
	// WAN is the datacenter pool's (wan.go), whatever a server's Timing.
	WAN Timing = "wan"
)

// preset is the timers of one Timing.
type preset struct {
	// The memberlist timers: how often a member is probed, how long an
	// ack is awaited, how many probe intervals (scaled by log n) a
	// suspicion lasts, and how often gossip goes out.
	probeInterval  time.Duration
	probeTimeout   time.Duration
	suspicionMult  int
	gossipInterval time.Duration
	// reconnectEvery is how often failed members are tried again, so a
	// partition heals (reconnectLoop).
	reconnectEvery time.Duration
}

var presets = map[Timing]preset{
	// LAN keeps memberlist's LAN preset. Measured on this machine (10
	// processes, 2 cores): 0 false failures in 3-minute soaks under a CPU
	// hog and under SIGSTOP bursts, where 300 ms probes with a multiplier
	// of 3 gave hundreds. Its slowness (5.5-6 s to a failure) no longer
	// matters for what circuit reports: the watches see a crash in about
	// 0.5 s and a lost host in 2-2.5 s (tests/soak, docs/PERFORMANCE.md),
	// and memberlist's own verdict only follows. The reconnect tick of 2 s
	// healed a partition in 0.9 s (majority) to 4 s (cut side) in
	// tests/hosts.
	//
	// Its gossip interval is 1 s, not memberlist's 200 ms: each tick wakes
	// every server, and at 200 ms those wakes were a third of an idle
	// server's CPU (10 servers: 2.2-3.7 ms of CPU a second each, against
	// 1.4-1.9 at 1 s). What gossip carried fast is now carried directly: a
	// new server exchanges state with up to 32 members when it joins
	// (announce), a leaving one tells every member (sayBye), and crashes go
	// by the watches' own messages. Gossip at 2 s was tried too: 100
	// servers took 8.3 s and then 14.5 s to all see each other, against
	// 8.0-8.5 s at 1 s, so it stays at 1 s.
	//
	// Its probe interval is 2 s, not 1 s: memberlist's own verdict on a
	// failure is no longer what circuit reports, and each probe wakes two
	// servers three times (probe, ping, ack). With four clusters of 30
	// side by side, probes and gossip at 2 s took 20% fewer context
	// switches and 9% less CPU than at 1 s. A crash is hidden by the
	// watches and its news goes to every member directly, so memberlist's
	// verdict (about 4 x log10(n) x 2 s later) only tidies its own list.
	LAN: {
		probeInterval: 2 * time.Second, probeTimeout: 500 * time.Millisecond, suspicionMult: 4,
		gossipInterval: time.Second, reconnectEvery: 2 * time.Second,
	},
	// WAN is the datacenter pool's. memberlist's own WAN preset (probes
	// every 5 s, 3 s for an ack, suspicion 6 x log10(n) probe intervals,
	// up to 6 times longer while few members confirm it) needed over a
	// minute to see a cut between two datacenters of three: a suspicion
	// lasts longest when few can confirm it. These timers allow a round
	// trip of 1.5 s before a probe counts as missed, 15 times the 100 ms
	// of the test's slow link (tests/dc), and declare a member of another
	// datacenter dead 8 to 16 s after it stops answering; the reconnect
	// tick of 5 s heals a cut within seconds of the link's return.
	WAN: {
		probeInterval: 2 * time.Second, probeTimeout: 1500 * time.Millisecond, suspicionMult: 4,
		gossipInterval: time.Second, reconnectEvery: 5 * time.Second,
	},
	// Local shrinks the timers five-fold for one machine, where a probe's
	// round trip is well under a millisecond, so that tests of joins,
	// leaves and healing run in a second rather than several. With the
	// watches on top, the files of a worker whose server was killed left
	// the anchor file system after 0.36-0.38 s (spawn_test.go). It is not
	// for real networks: memberlist alone at 200 ms probes was measured
	// (issue 9) to churn false failures at 30 servers and collapse at 100.
	Local: {
		probeInterval: 200 * time.Millisecond, probeTimeout: 100 * time.Millisecond, suspicionMult: 3,
		gossipInterval: 50 * time.Millisecond, reconnectEvery: 300 * time.Millisecond,
	},
}

// wanConfig returns the datacenter pool's memberlist configuration.
func wanConfig() *memberlist.Config {
	p := presets[WAN]
	mc := memberlist.DefaultWANConfig()
	mc.ProbeInterval, mc.ProbeTimeout = p.probeInterval, p.probeTimeout
	mc.SuspicionMult, mc.GossipInterval = p.suspicionMult, p.gossipInterval
	mc.SuspicionMaxTimeoutMult = 2
	mc.AwarenessMaxMultiplier = 2
	mc.EnableCompression = false
	return mc
}

// memberlistConfig returns memberlist's configuration for a timing.
func (t Timing) memberlistConfig() (*memberlist.Config, preset) {
	p, ok := presets[t]
	if !ok {
		p = presets[LAN]
	}
	mc := memberlist.DefaultLANConfig()
	if t == Local {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.ProbeInterval, mc.ProbeTimeout = p.probeInterval, p.probeTimeout
	mc.SuspicionMult, mc.GossipInterval = p.suspicionMult, p.gossipInterval
	// No compression: it saves bytes only in push-pull exchanges (a few
	// KiB every 30 s or more), and its allocations cost CPU at every one.
	// Measured with 30 servers in one process, idle for 30 s: 870 ms of
	// CPU with it, 720 ms without.
	mc.EnableCompression = false
	return mc, p
}
