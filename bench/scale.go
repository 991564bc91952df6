package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	scaleSizes = flag.String("scale", "10,30,100", "cluster sizes of the scale benchmark")
	scaleCSV   = flag.String("scale-csv", "", "also write the scale benchmark's rows to this CSV `file` (for bench/plot_scale.py)")
)

// benchScale starts clusters of each size in a network namespace of their
// own, so that its loopback counts exactly their traffic, and measures how
// long until every server sees every other, `ls /`, idle memory, CPU and
// traffic per server, and how soon a kill -9 is seen.
func benchScale(b *bench) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root, for a network namespace")
	}
	var csv *os.File
	if *scaleCSV != "" {
		var err error
		if csv, err = os.Create(*scaleCSV); err != nil {
			return err
		}
		defer csv.Close()
		fmt.Fprintln(csv, "servers,converge_s,ls_ms,rss_mean_mib,rss_max_mib,cpu_pct_of_core,traffic_kib_s_per_server,kill_seen_s,beat_floor_cpu_pct_of_core")
	}
	for _, f := range strings.Split(*scaleSizes, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 {
			return fmt.Errorf("-scale %q: want sizes of 2 or more", *scaleSizes)
		}
		err = b.scale(n, csv)
		b.stopAll()
		if err != nil {
			return fmt.Errorf("%d servers: %w", n, err)
		}
	}
	return nil
}

func (b *bench) scale(n int, csv *os.File) error {
	ns := fmt.Sprintf("circuit-scale-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	if err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run(); err != nil {
		return err
	}
	in := func(args ...string) []string { return append([]string{"netns", "exec", ns}, args...) }
	cli := func(args ...string) (string, time.Duration, error) {
		start := time.Now()
		out, err := exec.Command("ip", in(append([]string{b.circuit}, args...)...)...).Output()
		return string(out), time.Since(start), err
	}
	var pids []int
	var urls []string
	for i := range n {
		args := []string{b.circuit, "start", "-a", "127.0.0.1:0", "-log", "error"}
		if i > 0 {
			args = append(args, "-j", urls[0])
		}
		p, url, err := b.start("ip", in(args...)...)
		if err != nil {
			return err
		}
		pids, urls = append(pids, p.Process.Pid), append(urls, url)
	}
	lastStart := time.Now()
	// Every server sees all n: each is asked until it does.
	for _, u := range urls {
		for {
			out, _, err := cli("ls", "-d", u, "/")
			if err == nil && strings.Count(out, "\n") == n {
				break
			}
			if time.Since(lastStart) > 60*time.Second {
				return fmt.Errorf("not all servers see %d members after 60 s", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	converged := time.Since(lastStart)
	var lsTimes []time.Duration
	for range 21 {
		_, d, err := cli("ls", "-d", urls[0], "/")
		if err != nil {
			return err
		}
		lsTimes = append(lsTimes, d)
	}
	sort.Slice(lsTimes, func(i, j int) bool { return lsTimes[i] < lsTimes[j] })

	// Idle: memory, CPU and loopback traffic over a window.
	time.Sleep(5 * time.Second) // settle after the ls calls
	const window = 20 * time.Second
	bytes0, err := loBytes(ns)
	if err != nil {
		return err
	}
	cpu0 := cpuTicks(pids)
	time.Sleep(window) // the idle window is the measurement
	cpu1 := cpuTicks(pids)
	bytes1, err := loBytes(ns)
	if err != nil {
		return err
	}
	var rssSum, rssMax int
	for _, p := range pids {
		kib, err := rssKiB(p)
		if err != nil {
			return err
		}
		rssSum += kib
		rssMax = max(rssMax, kib)
	}
	cpuShare := float64(cpu1-cpu0) / clockTicks / window.Seconds() // of one core, the whole cluster
	perServer := float64(bytes1-bytes0) / window.Seconds() / float64(n) / 1024

	// A kill -9 among them, seen at the first server.
	victim := n / 2
	syscall.Kill(pids[victim], syscall.SIGKILL)
	killed := time.Now()
	id := idOf(urls[victim])
	for {
		out, _, err := cli("ls", "-d", urls[0], "/")
		if err == nil && !strings.Contains(out, id) {
			break
		}
		if time.Since(killed) > 30*time.Second {
			return fmt.Errorf("kill -9 not seen in 30 s")
		}
	}
	seen := time.Since(killed)
	b.stopAll()

	floor, err := b.beatFloor(n, ns, window)
	if err != nil {
		return fmt.Errorf("beat floor: %w", err)
	}
	fmt.Printf("scale    %3d servers: all see all %v after the last start; ls / median %v (CLI, process start included); idle RSS mean %.1f MiB, max %.1f MiB; idle CPU %.1f%% of one core for the whole cluster; loopback traffic %.2f KiB/s per server; kill -9 seen after %v; the beat floor's idle CPU %.1f%%, so circuit's is %.2f times it\n",
		n, converged.Round(time.Millisecond), lsTimes[len(lsTimes)/2].Round(time.Microsecond),
		float64(rssSum)/float64(n)/1024, float64(rssMax)/1024, 100*cpuShare, perServer, seen.Round(time.Millisecond), 100*floor, cpuShare/floor)
	if csv != nil {
		fmt.Fprintf(csv, "%d,%.3f,%.1f,%.2f,%.2f,%.2f,%.3f,%.3f,%.2f\n", n, converged.Seconds(),
			float64(lsTimes[len(lsTimes)/2].Microseconds())/1000, float64(rssSum)/float64(n)/1024,
			float64(rssMax)/1024, 100*cpuShare, perServer, seen.Seconds(), 100*floor)
	}
	return nil
}

// beatFloor runs n copies of bench/beatfloor in the namespace ns, each
// beating on a watch from each of the 3 before it in a ring, as circuit's
// watches do, and returns their CPU over window as a share of one core: the
// least an idle cluster of n can cost while still seeing a lost host the way
// circuit does.
func (b *bench) beatFloor(n int, ns string, window time.Duration) (float64, error) {
	bin := filepath.Join(b.dir, "beatfloor")
	if _, err := os.Stat(bin); err != nil {
		if err := build(bin, "./bench/beatfloor"); err != nil {
			return 0, err
		}
	}
	type peer struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		addr  string
	}
	peers := make([]peer, n)
	for i := range peers {
		cmd := exec.Command("ip", "netns", "exec", ns, bin)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return 0, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return 0, err
		}
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		b.procs = append(b.procs, cmd)
		addr, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("beatfloor printed no address: %w", err)
		}
		peers[i] = peer{cmd, stdin, strings.TrimSpace(addr)}
	}
	const watched = 3 // watchSuccessors in internal/cluster
	var pids []int
	for i, p := range peers {
		var succ []string
		for k := 1; k <= min(watched, n-1); k++ {
			succ = append(succ, peers[(i+k)%n].addr)
		}
		if _, err := fmt.Fprintln(p.stdin, strings.Join(succ, ",")); err != nil {
			return 0, err
		}
		pids = append(pids, p.cmd.Process.Pid)
	}
	time.Sleep(5 * time.Second) // settle: every dial done
	cpu0 := cpuTicks(pids)
	time.Sleep(window) // the idle window is the measurement
	cpu1 := cpuTicks(pids)
	b.stopAll()
	return float64(cpu1-cpu0) / clockTicks / window.Seconds(), nil
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times.
const clockTicks = 100

// cpuTicks sums the user and system time of processes, in clock ticks.
func cpuTicks(pids []int) int {
	total := 0
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// The command name may hold spaces; fields count from after it.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.Atoi(fields[11])
		st, _ := strconv.Atoi(fields[12])
		total += ut + st
	}
	return total
}

// loBytes reads how many bytes the namespace's loopback has carried.
func loBytes(ns string) (int64, error) {
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/sys/class/net/lo/statistics/tx_bytes").Output()
	if err != nil {
		return 0, fmt.Errorf("reading loopback counters: %w", err)
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}
