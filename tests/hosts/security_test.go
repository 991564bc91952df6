package hosts

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/hostcluster"
)

// secretTraffic sends a message holding secret over a channel on host 3,
// through host 0, receives it through host 1, and has a process on host 2
// print it, read through host 0: traffic between the test host and two
// dial-in servers, relayed on to the hosting servers.
func secretTraffic(t *testing.T, c *hostcluster.Cluster, secret string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl0, cl1 := c.Client(c.Hosts[0]), c.Client(c.Hosts[1])
	ch, err := cl0.MakeChanAt(ctx, "/"+c.Hosts[3].ServerID()+"/secret/ch", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Send(ctx, strings.NewReader(secret)); err != nil {
		t.Fatal(err)
	}
	r, err := cl1.ChanAt(ch.Path()).Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != secret {
		t.Fatalf("received %d bytes, %v", len(b), err)
	}
	if err := echo(ctx, cl0, "/"+c.Hosts[2].ServerID()+"/secret/echo", 7); err != nil {
		t.Fatal(err)
	}
	p, err := cl0.MakeProcAt(ctx, "/"+c.Hosts[2].ServerID()+"/secret/p", client.Cmd{Path: "/bin/echo", Args: []string{secret}, Scrub: true})
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.OpenStream(ctx, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if b, _ := io.ReadAll(out); strings.TrimSpace(string(b)) != secret {
		t.Fatalf("the process printed %d bytes, not the secret", len(b))
	}
}

func newSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "circuit-secret-" + hex.EncodeToString(b)
}

// TestCaptureWithoutKey is the control for TestKeyedCluster: with no key,
// a capture on the bridge does hold the plaintext, so the capture works.
func TestCaptureWithoutKey(t *testing.T) {
	c := hostcluster.Start(t, 5, hostcluster.Options{})
	secret := newSecret()
	cp := c.Capture()
	secretTraffic(t, c, secret)
	data := cp.Stop()
	if n := bytes.Count(data, []byte(secret)); n == 0 {
		t.Fatalf("an unkeyed cluster's traffic (%d bytes captured) does not hold the plaintext: the capture is broken", len(data))
	} else {
		t.Logf("FIGURE without a key, %d bytes captured, the secret seen %d times", len(data), n)
	}
}

// TestKeyedCluster runs five hosts with a key: the traffic captured on the
// network holds no plaintext of a channel message or a process's output, and
// neither a client nor a server without the key gets in.
func TestKeyedCluster(t *testing.T) {
	c := hostcluster.Start(t, 5, hostcluster.Options{Key: true})
	secret := newSecret()
	cp := c.Capture()
	secretTraffic(t, c, secret)
	data := cp.Stop()
	if bytes.Contains(data, []byte(secret)) {
		t.Fatal("the capture of keyed traffic holds the plaintext")
	}
	if len(data) < 10_000 {
		t.Fatalf("only %d bytes captured: the capture saw nothing", len(data))
	}
	t.Logf("FIGURE with a key, %d bytes captured, the secret seen 0 times", len(data))

	// A client without the key is refused, saying why.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var authErr *client.AuthError
	if _, err := client.Connect(ctx, client.Options{Addr: c.Hosts[0].URL()}); !errors.As(err, &authErr) {
		t.Fatalf("a client without the key: %v, want an AuthError", err)
	}
	// A server without the key, on one of the hosts, tries to join.
	h4 := c.Hosts[4]
	c.Shell(h4, "/bin/circuit start -if eth0 -a :11023 -j "+c.Hosts[0].URL()+" </dev/null >/tmp/intruder.out 2>/tmp/intruder.log &")
	testsupport.Eventually(t, 20*time.Second, func() error {
		if log := c.Shell(h4, "cat /tmp/intruder.log").Stdout; !strings.Contains(log, "will retry") {
			return fmt.Errorf("the intruder has not tried to join: %s", log)
		}
		return nil
	})
	for _, h := range c.Hosts {
		if ids, err := c.Members(h); err != nil || len(ids) != 5 {
			t.Fatalf("%s lists %v (%v) after an intruder tried to join", h.Name, ids, err)
		}
	}
	if !strings.Contains(c.Hosts[0].Log(), "refused connection") {
		t.Error("the joined server did not log the intruder's refusal")
	}
}
