// Command virus is the self-sustaining "virus" of seed 000: a nucleus and
// a payload, two workers on different hosts, each watching the other. When
// one dies, for whatever reason (its host killed, its process killed, a
// crash), the survivor spawns a replacement on another host, which then
// watches the survivor in turn. So the pair outlives the loss of any one
// host. This program starts the nucleus and exits; the virus runs on.
//
//	go run ./examples/virus [-d URL] [-life N]   # start it; prints the nucleus
//	circuit ls /virus/...                         # see it
//	go run ./examples/virus -stop                 # kill it, for good
//
// Each worker is listed in the anchor file system under /virus/nucleus or
// /virus/payload. The payload's work is a heartbeat on its stdout, once a
// second. Every replacement spends one unit of -life, and every worker
// ends after a day, so a forgotten virus dies out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/circuit-project/circuit"
	"github.com/circuit-project/circuit/client"
)

const (
	nucleusDir = "/virus/nucleus"
	payloadDir = "/virus/payload"
	lifetime   = 24 * time.Hour // no worker outlives this
)

// cell is either half of the virus: role is "nucleus" or "payload". It
// watches its partner and, when the partner dies, spawns a new one with
// the other role on another host, spending one unit of life. A nucleus
// started without a partner (by main) spawns the first payload.
func cell(ctx context.Context, role string, partner *circuit.Worker, life int) error {
	ctx, cancel := context.WithTimeout(ctx, lifetime)
	defer cancel()
	if role == "payload" {
		go heartbeat(ctx)
	}
	for {
		if partner == nil {
			if life <= 0 {
				return errors.New("out of life: not replacing the partner")
			}
			p, err := spawnPartner(ctx, role, life-1)
			if err != nil {
				return err
			}
			partner, life = p, life-1
		}
		partner.Wait(ctx) // it died, or its host was lost: either way, replace it
		if ctx.Err() != nil {
			return ctx.Err()
		}
		partner = nil
	}
}

func heartbeat(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fmt.Println("beat", i)
		}
	}
}

// spawnPartner spawns the other role on a host other than this one,
// retrying a few times, since a host may be gone before the membership
// says so.
func spawnPartner(ctx context.Context, role string, life int) (*circuit.Worker, error) {
	other, dir := "payload", payloadDir
	if role == "payload" {
		other, dir = "nucleus", nucleusDir
	}
	c, err := circuit.Client()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := range 20 {
		host, err := otherHost(ctx, c)
		if err != nil {
			return nil, err
		}
		w, err := circuit.SpawnContext(ctx, host, []string{dir}, cell, other, circuit.Self(), life)
		if err == nil {
			return w, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("spawning a %s: %w", other, lastErr)
}

// otherHost picks a server other than this worker's, or this one if it is
// alone.
func otherHost(ctx context.Context, c *client.Client) (string, error) {
	members, err := c.Members(ctx)
	if err != nil {
		return "", err
	}
	here := ""
	if me := circuit.Self(); me != nil {
		here = me.Server()
	}
	var others []string
	for _, m := range members {
		if m.ID != here {
			others = append(others, m.ID)
		}
	}
	if len(others) == 0 {
		return here, nil
	}
	return others[rand.IntN(len(others))], nil
}

func init() { circuit.Register(cell) }

func main() {
	circuit.Main()
	addr := flag.String("d", "", "dial-in server `URL` (default: the URL in the file $CIRCUIT names)")
	life := flag.Int("life", 100, "how many replacements the virus may spawn, at most")
	stop := flag.Bool("stop", false, "kill the virus instead")
	flag.Parse()
	ctx := context.Background()
	c, err := circuit.ConnectEnv(ctx, *addr)
	if err != nil {
		fail(err)
	}
	if *stop {
		if err := kill(ctx, c); err != nil {
			fail(err)
		}
		fmt.Println("virus killed")
		return
	}
	host, err := otherHost(ctx, c)
	if err != nil {
		fail(err)
	}
	w, err := circuit.Spawn(host, []string{nucleusDir}, cell, "nucleus", (*circuit.Worker)(nil), *life)
	if err != nil {
		fail(err)
	}
	fmt.Printf("nucleus %s on %s\n", w.ID(), w.Server())
}

// kill kills every worker of the virus. A cell killed a moment after its
// partner may have replaced it already, so it kills until none is left.
func kill(ctx context.Context, c *client.Client) error {
	for range 50 {
		if _, err := c.Kill(ctx, "/virus/..."); err != nil {
			return err
		}
		if _, err := c.List(ctx, "/virus"); errors.Is(err, client.ErrNotFound) {
			return nil
		}
	}
	return errors.New("the virus keeps coming back")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "virus:", err)
	os.Exit(1)
}
