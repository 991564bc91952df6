// Command bench measures circuit on this machine and prints each figure as a
// ratio against a floor measured in the same run, since machines are noisy.
//
//	go run ./bench                 # everything
//	go run ./bench -only ls,memory # some
//
// It builds the circuit binary, starts real servers on loopback, and stops
// them (by PID) when done. Results go to standard output as a table;
// docs/PERFORMANCE.md records them.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/circuit-project/circuit"
)

var (
	only    = flag.String("only", "", "comma-separated benchmarks to run: "+strings.Join(names(), ","))
	runs    = flag.Int("runs", 200, "repetitions of each timed CLI command")
	idleFor = flag.Duration("idle", 30*time.Second, "how long a server idles before its memory is read")
	srvArgs = flag.String("server-args", "", "more `FLAGS` for every server the benchmarks start, such as \"-metrics 127.0.0.1:0 -http 127.0.0.1:0\"")
)

type benchmark struct {
	name string
	run  func(b *bench) error
}

var benchmarks = []benchmark{
	{"memory", benchMemory},
	{"ls", benchLs},
	{"join", benchJoin},
	{"kill", benchKill},
	{"lost", benchLost},
	{"launch", benchLaunch},
	{"profile", benchProfile},
	{"stdout", benchStdout},
	{"chan", benchChan},
	{"dns", benchDNS},
	{"spawn", benchSpawn},
	{"run", benchRun},
	{"cp", benchCp},
	{"exec", benchExec},
	{"scale", benchScale},
}

func names() []string {
	var out []string
	for _, b := range benchmarks {
		out = append(out, b.name)
	}
	return out
}

// bench holds the built binaries and the servers started, for cleanup.
type bench struct {
	dir     string
	circuit string
	floor   string
	procs   []*exec.Cmd
}

func main() {
	circuit.Main() // the spawn benchmark's workers are this program
	if len(os.Args) == 2 && os.Args[1] == exitArg {
		return // the spawn benchmark's floor: the same binary, started plainly
	}
	flag.Parse()
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	dir, err := os.MkdirTemp("", "circuit-bench-")
	if err != nil {
		fatal(err)
	}
	b := &bench{dir: dir, circuit: filepath.Join(dir, "circuit"), floor: filepath.Join(dir, "idlefloor")}
	defer os.RemoveAll(dir)
	for bin, pkg := range map[string]string{b.circuit: "./cmd/circuit", b.floor: "./bench/idlefloor"} {
		if err := build(bin, pkg); err != nil {
			fatal(err)
		}
	}
	fmt.Printf("circuit benchmarks, %s, %d CPUs\n\n", time.Now().UTC().Format("2006-01-02 15:04"), numCPU())
	failed := false
	for _, bm := range benchmarks {
		if len(want) > 0 && !want[bm.name] {
			continue
		}
		if err := bm.run(b); err != nil {
			fmt.Printf("%-8s FAILED: %v\n", bm.name, err)
			failed = true
		}
		b.stopAll()
	}
	if failed {
		os.Exit(1)
	}
}

// build builds the package pkg into bin.
func build(bin, pkg string) error {
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func numCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	var n int
	fmt.Sscan(string(out), &n)
	return n
}

// start runs a program that prints one line (an address or URL) on stdout
// and returns the process and that line.
func (b *bench) start(bin string, args ...string) (*exec.Cmd, string, error) {
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	b.procs = append(b.procs, cmd)
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
	}()
	select {
	case l := <-line:
		if l == "" {
			return nil, "", fmt.Errorf("%s printed nothing", bin)
		}
		return cmd, l, nil
	case <-time.After(20 * time.Second):
		return nil, "", fmt.Errorf("%s printed nothing within 20s", bin)
	}
}

func (b *bench) server(args ...string) (*exec.Cmd, string, error) {
	args = append(strings.Fields(*srvArgs), args...)
	return b.start(b.circuit, append([]string{"start", "-a", "127.0.0.1:0", "-log", "error"}, args...)...)
}

func (b *bench) stopAll() {
	for _, p := range b.procs {
		p.Process.Signal(syscall.SIGKILL)
		p.Wait()
	}
	b.procs = nil
}

// rssKiB reads a process's resident set size.
func rssKiB(pid int) (int, error) {
	f, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(f), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kib int
			_, err := fmt.Sscan(strings.TrimPrefix(line, "VmRSS:"), &kib)
			return kib, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// timeRuns runs the command n times and returns the median wall time.
func timeRuns(n int, name string, args ...string) (time.Duration, error) {
	var ds []time.Duration
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, name, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("%s %s: %v: %.300s", name, strings.Join(args, " "), err, stderr.String())
		}
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], nil
}

func report(name, figure, floor string, ratio float64, goal string) {
	fmt.Printf("%-8s %-44s floor %-28s ratio %6.3f   goal %s\n", name, figure, floor, ratio, goal)
}
