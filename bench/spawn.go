package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/circuit-project/circuit"
	"github.com/circuit-project/circuit/client"
)

// nop is the trivial function the spawn benchmark runs.
func nop(i int) int { return i }

func init() { circuit.Register(nop) }

// exitArg makes this program exit at once: the floor of the spawn
// benchmark starts the same binary as a plain process.
const exitArg = "-exit-at-once"

// benchSpawn measures Spawn round trips (spawn, run nop, wait for its
// result) with the binary already stored on the server, against plain
// mkproc+wait launches of the same binary in the same run.
func benchSpawn(b *bench) error {
	ctx := context.Background()
	c, id, err := b.spawningServers(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	spawnOnce := func(i int) error {
		w, err := circuit.Spawn(id, nil, nop, i)
		if err != nil {
			return err
		}
		res, err := w.Wait(ctx)
		if err != nil {
			return err
		}
		if res[0] != i {
			return fmt.Errorf("nop(%d) returned %v", i, res[0])
		}
		return nil
	}
	start := time.Now()
	if err := spawnOnce(-1); err != nil { // uploads the binary
		return err
	}
	first1 := time.Since(start)
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return err
	}
	sum, _, err := client.FileDigest(f)
	f.Close()
	if err != nil {
		return err
	}
	st, err := c.StatBinary(ctx, id, sum)
	if err != nil || !st.Present {
		return fmt.Errorf("the binary is not stored after a spawn: %v", err)
	}
	n := max(*runs/4, 10)
	spawns := func() (time.Duration, error) {
		start := time.Now()
		for i := range n {
			if err := spawnOnce(i); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	launches := func() (time.Duration, error) {
		start := time.Now()
		for i := range n {
			h, err := c.MakeProcAt(ctx, "/"+id+"/plain/"+strconv.Itoa(i), client.Cmd{Path: st.Path, Args: []string{exitArg}, Scrub: true})
			if err != nil {
				return 0, err
			}
			if ps, err := h.Wait(ctx); err != nil || ps.Exit != nil {
				return 0, fmt.Errorf("plain launch: %v %v", err, ps.Exit)
			}
		}
		return time.Since(start), nil
	}
	sr, lr, err := interleaved(n, spawns, launches)
	if err != nil {
		return err
	}
	report("spawn", fmt.Sprintf("Spawn+Wait of nop: %.0f/s (first, uploading %.0f MB: %v)", sr, float64(st.Size)/1e6, first1.Round(time.Millisecond)),
		fmt.Sprintf("mkproc+wait same binary %.0f/s", lr), sr/lr, "as high as it goes (issue 7 records it)")
	return nil
}

// spawningServers is twoServers with package circuit connected to the
// first, for benchmarks that Spawn. Keyed (clientOptions), every worker
// gets a credential.
func (b *bench) spawningServers(ctx context.Context) (*client.Client, string, error) {
	return b.twoServersWith(func(addr string) (*client.Client, error) {
		opt, err := clientOptions(addr)
		if err != nil {
			return nil, err
		}
		return circuit.Connect(ctx, opt)
	})
}
