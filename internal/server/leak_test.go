package server_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/cluster"
	"github.com/circuit-project/circuit/internal/server"
	"github.com/circuit-project/circuit/internal/testsupport"
)

// TestStoppedServersLeaveNoGoroutines starts three servers in this process,
// joins them, has them run processes and carry a channel message, stops
// them, and checks that none of their goroutines is left behind.
func TestStoppedServersLeaveNoGoroutines(t *testing.T) {
	// The test binary's own goroutines (the testing package's, the race
	// detector's) are not the servers': they are taken as they are now.
	ignore := goleak.IgnoreCurrent()

	var servers []*server.Server
	stopAll := func() {
		for i := len(servers) - 1; i >= 0; i-- {
			servers[i].Stop()
		}
		servers = nil
	}
	defer stopAll() // on a failure before the check
	for i := range 3 {
		cfg := server.Config{Addr: "127.0.0.1:0", Timing: cluster.Local}
		if i > 0 {
			cfg.Join = []string{servers[0].URL().String()}
		}
		s, err := server.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
	}
	for _, s := range servers {
		testsupport.Eventually(t, 20*time.Second, func() error {
			if got := len(s.Members()); got != len(servers) {
				return fmt.Errorf("%s sees %d members, want %d", s.ID(), got, len(servers))
			}
			return nil
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{Addr: servers[0].URL().String()})
	if err != nil {
		t.Fatal(err)
	}
	// A process on another server (the call is relayed), read to its end.
	host := c.Walk([]string{servers[1].ID().String()})
	p, err := host.Walk([]string{"leakjob"}).MakeProc(client.Cmd{Path: "/bin/sh", Args: []string{"-c", "echo hello"}, Scrub: true})
	if err != nil {
		t.Fatal(err)
	}
	p.Stdin().Close()
	p.Stderr().Close()
	out, err := io.ReadAll(p.Stdout())
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("process output %q, %v", out, err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatalf("wait: %v", err)
	}
	// A process still running when its server stops: its reaper ends it.
	if _, err := host.Walk([]string{"sleeper"}).MakeProc(client.Cmd{Path: "/bin/sleep", Args: []string{"60"}}); err != nil {
		t.Fatal(err)
	}
	// A channel on the third server, sent to and received from.
	ch, err := c.MakeChanAt(ctx, "/"+servers[2].ID().String()+"/leakchan", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Send(ctx, strings.NewReader("ping")); err != nil {
		t.Fatal(err)
	}
	r, err := ch.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(msg) != "ping" {
		t.Fatalf("received %q, %v", msg, err)
	}
	// A channel receiver still waiting when its server stops.
	if _, err := c.MakeChanAt(ctx, "/"+servers[2].ID().String()+"/empty", 0); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	recvCtx, stopRecv := context.WithTimeout(ctx, 20*time.Second)
	defer stopRecv()
	go func() { // joined below
		_, err := c.ChanAt("/" + servers[2].ID().String() + "/empty").Recv(recvCtx)
		waiting <- err
	}()

	stopAll()
	if err := <-waiting; err == nil {
		t.Error("a receive on a stopped server's channel succeeded")
	}
	c.Close()

	// goleak retries for a while before it reports, so goroutines that are
	// on their way out (memberlist's, after its Shutdown) do not count.
	goleak.VerifyNone(t, ignore)
}
