package footprint

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
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
