package client_test

import (
	"context"
	"io"
	"testing"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestStreamsDirect checks that stream connections go straight to their
// server when the client can reach it: once the dial-in server is gone, a
// process on the other server can still be read directly, and not with
// RelayOnly, where everything goes through the dial-in server.
func TestStreamsDirect(t *testing.T) {
	for _, tc := range []struct {
		name      string
		relayOnly bool
	}{
		{"direct", false},
		{"relay-only", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers := testcluster.StartInProcess(t, 2, nil)
			ctx := context.Background()
			c, err := client.Connect(ctx, client.Options{Addr: servers[0].URL().String(), RelayOnly: tc.relayOnly})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			a := c.Walk([]string{servers[1].ID().String(), "echo"})
			p, err := a.MakeProc(client.Cmd{Path: "/bin/sh", Args: []string{"-c", "read x; echo got $x"}})
			if err != nil {
				t.Fatal(err)
			}
			// Its stdin is opened while the dial-in server is there.
			if _, err := io.WriteString(p.Stdin(), "hello\n"); err != nil {
				t.Fatalf("stdin: %v", err)
			}
			servers[0].Stop()
			out, err := io.ReadAll(p.Stdout())
			switch {
			case tc.relayOnly && err == nil:
				t.Fatalf("stdout read %q with the dial-in server stopped and RelayOnly", out)
			case !tc.relayOnly && (err != nil || string(out) != "got hello\n"):
				t.Fatalf("stdout, directly: %q, %v", out, err)
			}
		})
	}
}
