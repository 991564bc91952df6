// Package footprint keeps an idle server's footprint small: its resident
// memory, and the wakes of the Go runtime that cost it CPU.
//
// Most of an idle circuit server's resident set is not heap but pages of
// its own executable: package initialisation and start-up touch code all
// over the binary, and the kernel's fault-around maps the neighbours of
// every page touched. Those pages stay mapped though the server will not
// run that code again. Trim, called once the server is up, tells the kernel
// that the executable's code is read at random (no fault-around from then
// on) and drops its mappings of the code, so that what stays resident is
// what the server actually runs while idle. The pages remain in the page
// cache; code that runs again faults them back in, cheaply.
//
// Keep, run for the server's life, trims again whenever the server has
// grown (joins, requests, transfers) and then gone quiet, and returns the
// Go heap's free pages to the kernel at the same time.
//
// Only the executable mapping of code (r-xp) is dropped: it is never
// written, so dropping it loses nothing. Writable or relocated mappings are
// left alone.
//
// FixProcs pins GOMAXPROCS at the value the runtime chose at start, which
// stops the runtime re-reading the CPU affinity and cgroup limits every
// second of the server's life. While Keep finds the server quiet, it runs
// on one P; Wake, called at every request, gives the others back at once.
package footprint

import (
	"runtime"
	"sync"
	"sync/atomic"
)

var procs struct {
	mu   sync.Mutex
	full int         // GOMAXPROCS when busy: the runtime's choice at start
	low  atomic.Bool // running on one P while quiet
}

// FixProcs sets GOMAXPROCS to its current value, so that the runtime no
// longer checks once a second whether it should change (Go 1.25 and
// later): a system call on every tick of an otherwise idle server, seen in
// strace. A server whose CPU limit changes picks it up when restarted.
func FixProcs() {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	procs.full = runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(procs.full)
}

// Wake gives a server that runs on one P while quiet all its Ps back. It
// is called at every request, and costs one atomic load when the server
// is awake already.
func Wake() {
	if procs.low.Load() {
		setLow(false)
	}
}

// setLow runs the process on one P (low) or on all of FixProcs' (not low).
//
// Why one P while quiet: with two, each timer or packet that wakes an idle
// server wakes a second thread to look for work (the runtime's spinning
// thread), which finds none and sleeps again. On one P the thread that
// woke runs the work itself. Measured with 4 clusters of 30 servers side
// by side: 19 context switches a second per server against 29, and 18%
// less CPU (docs/PERFORMANCE.md).
func setLow(low bool) {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	if procs.full <= 1 || procs.low.Load() == low {
		return
	}
	n := procs.full
	if low {
		n = 1
	}
	runtime.GOMAXPROCS(n)
	procs.low.Store(low)
}
