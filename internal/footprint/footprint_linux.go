package footprint

import (
	"bufio"
	"context"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// mapping is one of the executable's read-only mappings.
type mapping struct {
	start, end uintptr
	anonymous  bool // some page was modified (relocated): never drop it
}

// Trim drops the resident pages of the executable's read-only mappings
// (code and constant data) that hold no modified page. It is best effort:
// any failure leaves memory as it was.
func Trim() {
	for _, m := range readOnlyMappings() {
		advise(m.start, m.end-m.start, syscall.MADV_RANDOM)
		if !m.anonymous {
			advise(m.start, m.end-m.start, syscall.MADV_DONTNEED)
		}
	}
}

// readOnlyMappings reads /proc/self/smaps for the executable's private
// read-only mappings and whether any of their pages is anonymous.
func readOnlyMappings() []mapping {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mapping
	var cur *mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			// A mapping header: 00400000-00a62000 r-xp 00000000 fe:00 9980500 /path
			cur = nil
			if len(fields) < 6 || fields[5] != exe || (fields[1] != "r-xp" && fields[1] != "r--p") {
				continue
			}
			lo, hi, ok := strings.Cut(fields[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if !ok || err1 != nil || err2 != nil || end <= start {
				continue
			}
			out = append(out, mapping{start: uintptr(start), end: uintptr(end)})
			cur = &out[len(out)-1]
			continue
		}
		if cur != nil && len(fields) >= 2 && fields[0] == "Anonymous:" && fields[1] != "0" {
			cur.anonymous = true
		}
	}
	if sc.Err() != nil {
		return nil
	}
	return out
}

func advise(addr, length uintptr, advice int) {
	syscall.Syscall(syscall.SYS_MADVISE, addr, length, uintptr(advice))
}

// Keep trims again each time the process has grown and then gone quiet.
// Every period it reads its resident size and CPU time, and if it used
// under quietCPU of a core in the last period and holds more than grow
// bytes above the smallest size it had settled at after a trim, it trims
// (Trim, and the Go heap's free pages returned to the kernel). A cluster's
// joins, a burst of requests or a finished transfer run code and grow the
// heap that an idle server will not use again. A trim that freed less than
// grow makes the next one wait longer (up to maxGap), so a server whose
// working set simply is larger does not trim over and over. From a trim
// until the next busy period the collector runs at idleGOGC. A quiet period
// also puts the server on one P until the next request (Wake) or busy
// period. Keep returns when ctx ends.
func Keep(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	var (
		floor    = rssBytes() // the smallest size: at start, or settled after a trim
		settling = false      // the period after a trim: its end is the settled size
		before   int64        // the size before the last trim
		gap      time.Duration
		lastTrim time.Time
		lastCPU  = cpuTime()
		idle     = false // whether the collector runs at idleGOGC
		busyGOGC int     // the target to restore (GOGC, or its default)
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cpu := cpuTime()
		quiet := cpu-lastCPU < time.Duration(float64(period)*quietCPU)
		lastCPU = cpu
		setLow(quiet)
		if !quiet && idle {
			debug.SetGCPercent(busyGOGC)
			idle = false
		}
		rss := rssBytes()
		if settling {
			// What idle work faulted back in during the period after the
			// trim is the working set. (Judging from the size right after
			// the trim made the server trim every period, and pay for it.)
			settling = false
			floor = min(floor, rss)
			if before-rss < grow {
				gap = min(max(2*gap, period), maxGap)
			} else {
				gap = 0
			}
			continue
		}
		if now := time.Now(); quiet && rss > floor+grow && now.Sub(lastTrim) >= gap {
			if !idle {
				busyGOGC = debug.SetGCPercent(idleGOGC)
				idle = true
			}
			debug.FreeOSMemory() // first: its collection reads code tables Trim drops
			Trim()
			before, settling, lastTrim = rss, true, now
			lastCPU = cpuTime() // the trim's own CPU is not activity
		}
	}
}

const (
	// quietCPU is the share of a core under which a period counts as
	// quiet.
	quietCPU = 0.01
	// grow is how far the resident size may grow before a trim.
	grow = 1 << 20
	// maxGap bounds the wait between trims that free little.
	maxGap = 16 * time.Minute
	// idleGOGC is the collector's target while the server is quiet: the
	// heap of an idle server holds little, but at the default target it
	// grows by at least 4 MiB between collections, all of it resident.
	// A quarter of that costs a collection every few tens of seconds of
	// idle allocation, well under a millisecond each. The target before
	// (GOGC, or the default) comes back at the first busy period.
	idleGOGC = 25
)

// rssBytes reads the process's resident size from /proc/self/statm.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
