package footprint

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "RssFile:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Skip("no RssFile")
	return 0
}

// TestTrim drops resident code and keeps the program working.
func TestTrim(t *testing.T) {
	if len(readOnlyMappings()) == 0 {
		t.Skip("no mappings of the executable found")
	}
	before := rssFileKiB(t)
	Trim()
	after := rssFileKiB(t)
	t.Logf("RssFile %d KiB -> %d KiB", before, after)
	if after >= before {
		t.Fatalf("Trim did not lower the resident file pages: %d -> %d KiB", before, after)
	}
	// Everything still runs: code comes back on demand.
	var sb strings.Builder
	for i := range 1000 {
		sb.WriteString(strconv.Itoa(i))
	}
	if len(sb.String()) == 0 {
		t.Fatal("unreachable")
	}
}

// TestProcs: a quiet server runs on one P, and a request gives the rest
// back; FixProcs keeps the runtime's choice.
func TestProcs(t *testing.T) {
	start := runtime.GOMAXPROCS(0)
	if start < 2 {
		t.Skip("one CPU: nothing to lower")
	}
	defer runtime.GOMAXPROCS(start)
	FixProcs()
	for _, step := range []struct {
		name string
		do   func()
		want int
	}{
		{"fixed", func() {}, start},
		{"quiet", func() { setLow(true) }, 1},
		{"quiet again", func() { setLow(true) }, 1},
		{"request", Wake, start},
		{"request again", Wake, start},
		{"quiet, then busy", func() { setLow(true); setLow(false) }, start},
	} {
		step.do()
		if got := runtime.GOMAXPROCS(0); got != step.want {
			t.Fatalf("%s: GOMAXPROCS %d, want %d", step.name, got, step.want)
		}
	}
}
