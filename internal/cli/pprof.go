package cli

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/circuit-project/circuit/client"
)

type pprofFlags struct {
	cpu, trace, record            time.Duration
	heap, goroutine, block, mutex bool
}

func pprofCmd() *command {
	return &command{
		name:  "pprof",
		args:  "PATH",
		short: "profile a live server or worker: CPU, heap, goroutines, blocking, contention, or an execution trace",
		long: `Takes one profile of a running server (/Xid) or worker (its anchor /Xid/R...,
or its file in the anchor file system, /firehose/clients/R...) and writes it
to standard output, which must not be a terminal. go tool pprof reads the
profiles, go tool trace the trace:

  -cpu D         CPU for D
  -heap          live objects now
  -goroutine     every goroutine's stack
  -block         blocking, recorded for 5 s (or -for D)
  -mutex         lock contention, recorded for 5 s (or -for D)
  -trace D       an execution trace of D

Durations are at most 2 minutes, and a process takes one CPU profile or
trace at a time. Nothing runs until a profile is asked for: the block and
mutex profilers are on only while recording. A worker serves its profiles on
a control socket its server gave it, so it works through relays, with keys
and with credentials (role read) like any other operation. circuit stk
prints a worker's stacks as text.

Examples:
  circuit pprof -cpu 10s /X88550014d4c82e4d > server.pprof
  circuit pprof -heap /firehose/clients/R6aca01d945c3b861 > worker.heap
  go tool pprof -top server.pprof`,
		dial: true,
		flags: func(fs *flag.FlagSet) any {
			f := &pprofFlags{}
			fs.DurationVar(&f.cpu, "cpu", 0, "profile CPU for `DURATION`")
			fs.BoolVar(&f.heap, "heap", false, "profile the heap")
			fs.BoolVar(&f.goroutine, "goroutine", false, "profile the goroutines")
			fs.BoolVar(&f.block, "block", false, "profile blocking")
			fs.BoolVar(&f.mutex, "mutex", false, "profile lock contention")
			fs.DurationVar(&f.trace, "trace", 0, "trace execution for `DURATION`")
			fs.DurationVar(&f.record, "for", 0, "how long -block and -mutex record, `DURATION` (default 5s)")
			return f
		},
		run: runPprof,
	}
}

func runPprof(env *Env, inv *invocation) error {
	f := inv.opts.(*pprofFlags)
	if len(inv.args) != 1 {
		return usagef("pprof takes one path: a server /Xid, or a worker")
	}
	var kinds []string
	var d time.Duration
	for _, k := range []struct {
		on   bool
		kind string
		d    time.Duration
	}{
		{f.cpu != 0, client.ProfileCPU, f.cpu}, {f.heap, client.ProfileHeap, 0}, {f.goroutine, client.ProfileGoroutine, 0},
		{f.block, client.ProfileBlock, f.record}, {f.mutex, client.ProfileMutex, f.record}, {f.trace != 0, client.ProfileTrace, f.trace},
	} {
		if k.on {
			kinds, d = append(kinds, k.kind), k.d
		}
	}
	switch {
	case len(kinds) != 1:
		return usagef("pprof takes one of -cpu D, -heap, -goroutine, -block, -mutex and -trace D")
	case d < 0 || d > 2*time.Minute:
		return usagef("a profile lasts at most 2m, not %v", d)
	case f.record != 0 && !f.block && !f.mutex:
		return usagef("-for goes with -block or -mutex; -cpu and -trace take their duration")
	}
	if out, ok := env.Stdout.(*os.File); ok && isTerminal(out) {
		return usagef("pprof writes a binary profile: send standard output to a file (circuit pprof ... > FILE)")
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(env.Stdout)
	if err := c.Profile(env.Ctx, inv.args[0], kinds[0], d, w); err != nil {
		return fmt.Errorf("pprof %s: %w", inv.args[0], err)
	}
	return w.Flush()
}
