// Package hosts runs circuit on separate hosts: five or more Docker
// containers, each with its own address on a private network the test
// creates, under the faults of real machines: crashes, restarts, hung hosts,
// partitions and churn (package hostcluster).
package hosts

import (
	"context"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport/hostcluster"
)

// TestJoinByURL starts five hosts that join the first by its URL, and checks
// that every host and a client outside them see all five.
func TestJoinByURL(t *testing.T) {
	start := time.Now()
	c := hostcluster.Start(t, 5, hostcluster.Options{})
	t.Logf("5 hosts up and fully joined in %v", time.Since(start).Round(time.Millisecond))
	cl := c.Client(c.Hosts[4])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := cl.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 5 {
		t.Fatalf("client via %s sees %d members, want 5: %v", c.Hosts[4].Name, len(ms), ms)
	}
}
