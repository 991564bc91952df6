package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
	"github.com/circuit-project/circuit/internal/testsupport/testnet"
)

const group = "228.8.8.8:7711"

// TestDiscovery runs the seed's zero-configuration start inside a network
// namespace: the same command on every server, no URL given.
func TestDiscovery(t *testing.T) {
	ns := testnet.Netns(t)
	cl := testcluster.Start(t, 0, testcluster.Options{Netns: ns, Key: true})
	a := cl.Spawn("start", "-a", "127.0.0.1:0", "-discover", group, "-hmac", cl.KeyFile)
	b := cl.SpawnEnv([]string{"CIRCUIT_DISCOVER=" + group}, "start", "-a", "127.0.0.1:0", "-hmac", cl.KeyFile)
	cl.Spawn("start", "-a", "127.0.0.1:0", "-hmac", cl.KeyFile) // no discovery: stays alone
	want := []string{"/" + a.ID, "/" + b.ID}
	slices.Sort(want)

	testsupport.Eventually(t, 15*time.Second, func() error {
		r := cl.RunEnv(nil, "", "ls", "-discover", group, "/")
		if got := testcluster.Lines(r.Stdout); !slices.Equal(got, want) {
			return fmt.Errorf("ls -discover listed %v (exit %d: %s), want exactly the two discovering servers %v", got, r.Code, strings.TrimSpace(r.Stderr), want)
		}
		return nil
	})
	r := cl.RunEnv([]string{"CIRCUIT_DISCOVER=" + group}, "", "ls", "/...")
	if !slices.Equal(testcluster.Lines(r.Stdout), want) {
		t.Fatalf("CIRCUIT_DISCOVER ls /...: %+v", r)
	}
	// A client without the key finds nobody: announcements are authenticated.
	start := time.Now()
	r = cl.RunEnv([]string{"CIRCUIT_HMAC="}, "", "ls", "-discover", group, "/")
	if r.Code != 4 || !strings.Contains(r.Stderr, "no circuit server answered on multicast "+group) {
		t.Fatalf("keyless discovery: %+v", r)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("keyless discovery took %v", time.Since(start))
	}
}

// TestNoMulticastUnlessAsked listens on the group inside a namespace while
// a server starts and is used without -discover: nothing may arrive.
func TestNoMulticastUnlessAsked(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 for the multicast listener")
	}
	ns := testnet.Netns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listener := testnet.Command(ctx, ns, py, "-c", `
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("228.8.8.8", 7711))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4s", socket.inet_aton("228.8.8.8"), socket.inet_aton("127.0.0.1")))
print("ready", flush=True)
s.settimeout(3)
try:
    data, src = s.recvfrom(2048)
    print("GOT", src, data[:16], flush=True)
    sys.exit(1)
except socket.timeout:
    print("silence", flush=True)
`)
	out, err := listener.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(out) // whole lines: a pipe may deliver a line in pieces
	if line, err := lines.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("listener: %q %v", line, err)
	}
	cl := testcluster.Start(t, 2, testcluster.Options{Netns: ns})
	cl.Run("ls", "/...")
	rest, _ := io.ReadAll(lines)
	if err := listener.Wait(); err != nil {
		t.Fatalf("a multicast packet was sent with no -discover: %s (%v)", rest, err)
	}
	if !strings.Contains(string(rest), "silence") {
		t.Fatalf("listener said %q", rest)
	}
}
