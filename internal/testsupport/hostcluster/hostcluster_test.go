package hostcluster

import (
	"slices"
	"strings"
	"testing"

	"github.com/circuit-project/circuit/internal/testsupport/build"
)

func TestMain(m *testing.M) { build.Main(m) }

// TestStart starts two hosts and checks that each has its own address in
// the cluster's subnet, that each lists both servers, and that a client
// outside them does too.
func TestStart(t *testing.T) {
	c := Start(t, 2, Options{})
	h0, h1 := c.Hosts[0], c.Hosts[1]
	if h0.IP == h1.IP || !c.Subnet.Contains(h0.IP) || !c.Subnet.Contains(h1.IP) {
		t.Errorf("hosts at %v and %v, want two addresses in %v", h0.IP, h1.IP, c.Subnet)
	}
	if !strings.Contains(h0.URL(), h0.IP.String()) {
		t.Errorf("host 0's server advertises %s, not its address %s", h0.URL(), h0.IP)
	}
	want := []string{h0.ServerID(), h1.ServerID()}
	slices.Sort(want)
	for _, h := range c.Hosts {
		got, err := c.Members(h)
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s lists %v (%v), want %v", h.Name, got, err, want)
		}
	}
	ms, err := c.Client(h1).Members(t.Context())
	if err != nil || len(ms) != 2 {
		t.Errorf("a client outside the hosts lists %v, %v", ms, err)
	}
}
