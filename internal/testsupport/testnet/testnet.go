// Package testnet makes network namespaces for tests: private loopback
// networks where multicast and other traffic never touch the machine's own
// interfaces. Creating one needs root and iproute2's ip; without them the
// test skips, or fails when CIRCUIT_REQUIRE_NETNS=1 (as in CI).
package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RequireEnv makes missing namespace support a failure instead of a skip.
const RequireEnv = "CIRCUIT_REQUIRE_NETNS"

// Netns creates a network namespace whose loopback is up and carries
// multicast (224.0.0.0/4 routed to lo), deletes it when the test ends, and
// returns its name.
func Netns(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skip(t, "needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skip(t, "needs ip (iproute2): %v", err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	ns := fmt.Sprintf("circuit-test-%x", rnd)
	if err := ip("netns", "add", ns); err != nil {
		skip(t, "cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ip("netns", "delete", ns); err != nil {
			t.Errorf("deleting network namespace %s: %v", ns, err)
		}
	})
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "set", "lo", "multicast", "on"},
		{"route", "add", "224.0.0.0/4", "dev", "lo", "src", "127.0.0.1"},
	} {
		if err := ip(append([]string{"netns", "exec", ns, "ip"}, args...)...); err != nil {
			t.Fatalf("setting up network namespace %s: %v", ns, err)
		}
	}
	return ns
}

// Command returns a command that runs name with args inside namespace ns.
// `ip netns exec` execs the program itself, so the command's PID is the
// program's.
func Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf(format+" (and %s=1)", append(args, RequireEnv)...)
	}
	t.Skipf(format+"; set %s=1 to fail instead", append(args, RequireEnv)...)
}

func ip(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
