package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"time"

	"github.com/circuit-project/circuit"
	"github.com/circuit-project/circuit/client"
)

// busy hashes for ms milliseconds on one core and returns how many rounds
// it made: the worker the profile benchmark measures.
func busy(ms int) int {
	sum := sha256.Sum256([]byte("busy"))
	n := 0
	for end := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(end); n++ {
		for range 1000 {
			sum = sha256.Sum256(sum[:])
		}
	}
	return n
}

func init() { circuit.Register(busy) }

// profileFor is how long the profile benchmark's worker runs, and its CPU
// profile lasts.
const profileFor = 10 * time.Second

// benchProfile measures what a CPU profile costs a busy worker: its rounds
// in a run of profileFor and 5% more, profiled for profileFor of it,
// against its rounds in a run as long without, alternating twice.
func benchProfile(b *bench) error {
	ctx := context.Background()
	c, id, err := b.spawningServers(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	run := func(profiled bool) (int, error) {
		// The worker outlives its profile by a moment, so that the
		// profile ends first; both runs are as long.
		w, err := circuit.Spawn(id, []string{"/bench/busy"}, busy, int((profileFor+profileFor/20)/time.Millisecond))
		if err != nil {
			return 0, err
		}
		profile := make(chan error, 1)
		if profiled {
			go func() { profile <- c.Profile(ctx, w.Anchor(), client.ProfileCPU, profileFor, io.Discard) }()
		} else {
			profile <- nil
		}
		res, err := w.Wait(ctx)
		if err != nil {
			return 0, err
		}
		if err := <-profile; err != nil {
			return 0, fmt.Errorf("profiling the busy worker: %w", err)
		}
		return res[0].(int), nil
	}
	var plain, profiled int
	for range 2 {
		p, err := run(false)
		if err != nil {
			return err
		}
		q, err := run(true)
		if err != nil {
			return err
		}
		plain, profiled = plain+p, profiled+q
	}
	report("profile", fmt.Sprintf("busy worker, CPU profiled for %v: %d rounds", profileFor, profiled/2),
		fmt.Sprintf("not profiled %d rounds", plain/2), float64(profiled)/float64(plain), "≥ 0.95 (issue 23)")
	return nil
}
