// Command upgrade is a service of three workers behind a channel, made to
// show seed 001's "surgically replacing components of running cloud
// applications with binaries from different versions of the source tree,
// without causing service interruption": circuit respawn moves it onto a
// new build while clients keep asking, and no request fails.
//
//	go build -o upgrade-v1 -ldflags "-X main.version=v1" ./examples/upgrade
//	go build -o upgrade-v2 -ldflags "-X main.version=v2" ./examples/upgrade
//	./upgrade-v1 start                              # the service, build v1
//	./upgrade-v1 ask -for 30s &                     # a load, printing each second's answers by build
//	circuit respawn -binary upgrade-v2 /upgrade/... # one worker at a time
//	./upgrade-v1 stop
//
// The service's requests channel is /Xid/upgrade/requests on the dial-in
// server; each of its workers (listed in /upgrade/service) takes requests
// from it and answers each on the channel the request names, with its
// build and its worker ID. A client (ask) sends requests from a few
// goroutines, one at a time each, on a reply channel of its own.
//
// What "without interruption" asks of a worker: it returns once its
// circuit.Context ends (the respawn asks it to, once its replacement runs),
// and it holds no request when it does. serve answers every request it has
// received before it looks at its context again; a receive cut short by
// the context has taken nothing from the channel, so the request goes to
// another worker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/circuit-project/circuit"
	"github.com/circuit-project/circuit/client"
)

// version names this build; set with -ldflags "-X main.version=NAME".
var version = "dev"

const (
	serviceDir = "/upgrade/service"
	workers    = 3
	// answerWait bounds how long ask waits for one answer before it counts
	// the request as failed.
	answerWait = 10 * time.Second
)

// request is one question to the service.
type request struct {
	ID    int
	Reply circuit.Chan[answer]
}

// answer says who answered it.
type answer struct {
	ID     int
	Build  string
	Worker string
}

// serve is a worker of the service: it answers requests until it is asked
// to stop or the channel is closed.
func serve(ctx context.Context, requests circuit.Chan[request]) error {
	self := circuit.Self().ID()
	for {
		req, err := requests.RecvContext(ctx)
		switch {
		case err == nil:
			// Taken, so answered, even if the worker is being asked to stop.
			actx, cancel := context.WithTimeout(context.Background(), answerWait)
			err := req.Reply.SendContext(actx, answer{ID: req.ID, Build: version, Worker: self})
			cancel()
			if err != nil {
				fmt.Fprintf(os.Stderr, "answering request %d on %s: %v\n", req.ID, req.Reply.Path(), err)
			}
		case ctx.Err() != nil:
			return nil // asked to stop, holding nothing
		case errors.Is(err, io.EOF):
			return nil // the service was stopped
		default:
			return err
		}
	}
}

func init() { circuit.Register(serve) }

func main() {
	circuit.Main()
	addr := flag.String("d", "", "dial-in server `URL` (default: the URL in the file $CIRCUIT names)")
	askFlags := flag.NewFlagSet("ask", flag.ExitOnError)
	dur := askFlags.Duration("for", 0, "how long to keep asking (0: until interrupted)")
	clients := askFlags.Int("c", 4, "how many requests are outstanding at a time")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: upgrade [-d URL] start | ask [-for D] [-c N] | stop\n")
		flag.PrintDefaults()
		askFlags.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 || flag.Arg(0) == "ask" && askFlags.Parse(flag.Args()[1:]) != nil || flag.Arg(0) != "ask" && flag.NArg() != 1 || askFlags.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := circuit.ConnectEnv(ctx, *addr)
	if err != nil {
		fail(err)
	}
	switch flag.Arg(0) {
	case "start":
		err = start(ctx, c)
	case "ask":
		if *dur > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *dur)
			defer cancel()
		}
		err = ask(ctx, c, *clients)
	case "stop":
		err = stopService(ctx, c)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fail(err)
	}
}

// requestsAt is the service's requests channel: on the dial-in server.
func requestsAt(ctx context.Context, c *client.Client) (string, error) {
	members, err := c.Members(ctx)
	if err != nil {
		return "", err
	}
	for _, m := range members {
		if m.Addr == c.DialinAddr() {
			return "/" + m.ID + "/upgrade/requests", nil
		}
	}
	return "", fmt.Errorf("the dial-in server %s is not among the members", c.DialinAddr())
}

// start makes the requests channel and spawns the workers, one per server
// in turn.
func start(ctx context.Context, c *client.Client) error {
	path, err := requestsAt(ctx, c)
	if err != nil {
		return err
	}
	requests, err := circuit.MakeChanContext[request](ctx, path, 100)
	if err != nil {
		return err
	}
	members, err := c.Members(ctx)
	if err != nil {
		return err
	}
	for i := range workers {
		host := members[i%len(members)].ID
		w, err := circuit.SpawnContext(ctx, host, []string{serviceDir}, serve, requests)
		if err != nil {
			return err
		}
		fmt.Printf("worker %s on %s, build %s\n", w.ID(), w.Server(), version)
	}
	fmt.Printf("requests on %s\n", path)
	return nil
}

// tally counts answers by build.
type tally struct {
	mu      sync.Mutex
	byBuild map[string]int
	failed  int
}

func (t *tally) add(build string, failed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if failed {
		t.failed++
		return
	}
	t.byBuild[build]++
}

// take returns the counts so far and starts again.
func (t *tally) take() (map[string]int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, f := t.byBuild, t.failed
	t.byBuild, t.failed = map[string]int{}, 0
	return b, f
}

func line(byBuild map[string]int, failed int) string {
	var parts []string
	n := 0
	for _, name := range slices.Sorted(maps.Keys(byBuild)) {
		parts = append(parts, fmt.Sprintf("%s %d", name, byBuild[name]))
		n += byBuild[name]
	}
	return fmt.Sprintf("answered %d (%s), failed %d", n, strings.Join(parts, ", "), failed)
}

// ask sends requests from n goroutines, each one at a time on a reply
// channel of its own, until ctx ends; it prints each second's answers by
// build, then the totals. A request not answered within answerWait is a
// failure, and any failure makes ask fail.
func ask(ctx context.Context, c *client.Client, n int) error {
	path, err := requestsAt(ctx, c)
	if err != nil {
		return err
	}
	requests := circuit.ChanAt[request](path)
	sec, total := &tally{byBuild: map[string]int{}}, map[string]int{}
	failures := 0
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		reply, err := circuit.MakeChanContext[answer](ctx, fmt.Sprintf("%s-reply-%d-%d", path, os.Getpid(), i), 1)
		if err != nil {
			return err
		}
		defer reply.Scrub()
		wg.Go(func() { errs <- asker(ctx, requests, reply, i, sec) })
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	report := func() {
		b, f := sec.take()
		for k, v := range b {
			total[k] += v
		}
		failures += f
		fmt.Println(line(b, f))
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
loop:
	for {
		select {
		case <-tick.C:
			report()
		case <-done:
			break loop
		}
	}
	report()
	fmt.Println("total:", line(total, failures))
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	if failures > 0 {
		return fmt.Errorf("%d requests failed", failures)
	}
	return nil
}

// asker is one of ask's goroutines.
func asker(ctx context.Context, requests circuit.Chan[request], reply circuit.Chan[answer], i int, t *tally) error {
	for id := i << 32; ctx.Err() == nil; id++ {
		// A request, once sent, is waited for even after ctx ends: ask
		// stops between requests, so that no answer is left behind.
		wctx, cancel := context.WithTimeout(context.Background(), answerWait)
		err := requests.SendContext(wctx, request{ID: id, Reply: reply})
		var a answer
		if err == nil {
			a, err = reply.RecvContext(wctx)
		}
		cancel()
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "request %d: %v\n", id, err)
			t.add("", true)
			return nil // its reply channel may hold a late answer: this asker stops
		case a.ID != id:
			return fmt.Errorf("request %d got the answer to %d", id, a.ID)
		}
		t.add(a.Build, false)
	}
	return nil
}

// stopService asks the workers to stop and removes the requests channel.
func stopService(ctx context.Context, c *client.Client) error {
	killed, err := c.KillGrace(ctx, serviceDir+"/...", 5*time.Second)
	if err != nil {
		return err
	}
	path, err := requestsAt(ctx, c)
	if err != nil {
		return err
	}
	if err := c.ScrubAt(ctx, path); err != nil && !errors.Is(err, client.ErrNotFound) {
		return err
	}
	fmt.Printf("stopped %d workers\n", len(killed))
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "upgrade:", err)
	os.Exit(1)
}
