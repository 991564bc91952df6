package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/ident"
)

func benchMemory(b *bench) error {
	srv, _, err := b.server()
	if err != nil {
		return err
	}
	floor, _, err := b.start(b.floor)
	if err != nil {
		return err
	}
	time.Sleep(*idleFor) // the benchmark is of an idle server: waiting is the measurement
	s, err := rssKiB(srv.Process.Pid)
	if err != nil {
		return err
	}
	f, err := rssKiB(floor.Process.Pid)
	if err != nil {
		return err
	}
	report("memory", fmt.Sprintf("idle server RSS after %v: %.1f MiB", *idleFor, float64(s)/1024),
		fmt.Sprintf("idle Go listener %.1f MiB", float64(f)/1024), float64(s)/float64(f), "≤ 15 MiB absolute (issue 2), ≤ 10 MiB (project)")
	return nil
}

func benchLs(b *bench) error {
	_, url, err := b.server()
	if err != nil {
		return err
	}
	// Interleave so that both see the same machine state.
	var ls, help time.Duration
	const rounds = 4
	for range rounds {
		h, err := timeRuns(*runs/rounds, b.circuit, "help")
		if err != nil {
			return err
		}
		l, err := timeRuns(*runs/rounds, b.circuit, "ls", "-d", url, "/")
		if err != nil {
			return err
		}
		help += h / rounds
		ls += l / rounds
	}
	report("ls", fmt.Sprintf("circuit ls / median %v", ls.Round(time.Microsecond)),
		fmt.Sprintf("circuit help %v", help.Round(time.Microsecond)), float64(ls)/float64(help), "≤ 1.5 (issue 2), ≤ 1.15 (project)")
	return nil
}

// watch connects to the server at url and returns a function that waits
// until cond holds for its member list, polling every 2 ms.
func watch(url string) (*client.Client, func(cond func([]client.Member) bool, limit time.Duration) (time.Duration, error), error) {
	c, err := client.Connect(context.Background(), client.Options{Addr: url})
	if err != nil {
		return nil, nil, err
	}
	return c, func(cond func([]client.Member) bool, limit time.Duration) (time.Duration, error) {
		start := time.Now()
		for time.Since(start) < limit {
			ms, err := c.Members(context.Background())
			if err == nil && cond(ms) {
				return time.Since(start), nil
			}
			time.Sleep(2 * time.Millisecond)
		}
		return 0, fmt.Errorf("condition not met within %v", limit)
	}, nil
}

func has(id string) func([]client.Member) bool {
	return func(ms []client.Member) bool {
		return slices.ContainsFunc(ms, func(m client.Member) bool { return m.ID == id })
	}
}

func idOf(url string) string {
	u, err := ident.ParseURL(url)
	if err != nil {
		return ""
	}
	return u.ID.String()
}

func benchJoin(b *bench) error {
	_, first, err := b.server()
	if err != nil {
		return err
	}
	for range 8 {
		if _, _, err := b.server("-j", first); err != nil {
			return err
		}
	}
	c, wait, err := watch(first)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := wait(func(ms []client.Member) bool { return len(ms) == 9 }, 20*time.Second); err != nil {
		return fmt.Errorf("9 servers never met: %w", err)
	}
	// The 10th joins through the second server, not the first.
	ms, _ := c.Members(context.Background())
	via := ms[0].URL
	if strings.Contains(via, idOf(first)) {
		via = ms[1].URL
	}
	start := time.Now()
	_, url, err := b.server("-j", via)
	if err != nil {
		return err
	}
	printed := time.Since(start)
	d, err := wait(has(idOf(url)), 20*time.Second)
	if err != nil {
		return err
	}
	total := printed + d
	report("join", fmt.Sprintf("10th server in ls / at the 1st: %v", total.Round(time.Millisecond)),
		fmt.Sprintf("its own start (URL printed) %v", printed.Round(time.Millisecond)), float64(total)/float64(printed), "seen (issue 2); < 0.3 s after its URL (issue 9)")
	return nil
}

func benchKill(b *bench) error {
	for _, n := range []int{10, 30} {
		if err := b.detect("kill", n, syscall.SIGKILL, "memberlist LAN default ≈ 5-6 s", 5.5, "< 1 s (issue 9)"); err != nil {
			return err
		}
		b.stopAll()
	}
	return nil
}

// benchLost measures a lost host: a server stopped with SIGSTOP answers
// nothing and closes nothing.
func benchLost(b *bench) error {
	return b.detect("lost", 10, syscall.SIGSTOP, "memberlist LAN default ≈ 5.5-6 s", 5.5, "< 3 s (issue 9)")
}

// detect starts n servers on LAN timers, sends sig to the last, and
// measures how long until the first no longer lists it.
func (b *bench) detect(name string, n int, sig syscall.Signal, floor string, floorSecs float64, goal string) error {
	_, first, err := b.server()
	if err != nil {
		return err
	}
	var lastPID int
	var lastURL string
	for range n - 1 {
		p, url, err := b.server("-j", first)
		if err != nil {
			return err
		}
		lastPID, lastURL = p.Process.Pid, url
	}
	c, wait, err := watch(first)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := wait(func(ms []client.Member) bool { return len(ms) == n }, 30*time.Second); err != nil {
		return fmt.Errorf("%d servers never met: %w", n, err)
	}
	time.Sleep(2 * time.Second) // let the watch connections settle: the cluster is measured idle
	syscall.Kill(lastPID, sig)  // a stopped server is killed with the rest, by stopAll
	d, err := wait(func(ms []client.Member) bool { return !has(idOf(lastURL))(ms) }, 30*time.Second)
	if err != nil {
		return err
	}
	report(fmt.Sprintf("%s%d", name, n), fmt.Sprintf("%v: gone from ls / after %v", sig, d.Round(time.Millisecond)),
		floor, d.Seconds()/floorSecs, goal)
	return nil
}
