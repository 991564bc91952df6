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
	// by the watches' own messages.
	LAN: {
		probeInterval: time.Second, probeTimeout: 500 * time.Millisecond, suspicionMult: 4,
		gossipInterval: time.Second, reconnectEvery: 2 * time.Second,
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
