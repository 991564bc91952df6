package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
	"github.com/circuit-project/circuit/internal/wire"
)

// recorder keeps what a connection's dialler sends, as a capture on the
// wire would.
type recorder struct {
	net.Conn
	sent bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.sent.Write(b)
	return r.Conn.Write(b)
}

// capture makes a real keyed connection of the given kind to addr, meant
// for target, and returns the bytes its dialler sent first (the preamble).
func capture(t *testing.T, addr string, kind wire.Kind, target ident.ID, key *security.Key) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Conn: c}
	conn, err := wire.Open(context.Background(), rec, kind, target, key)
	if err != nil {
		t.Fatalf("a real %c connection: %v", kind, err)
	}
	defer conn.Close()
	return append([]byte{}, rec.sent.Bytes()[:wire.PreambleLen]...)
}

// openFiles counts the descriptors of process pid.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestReplayedPreamblesRefused captures the first flight of a real keyed
// connection of every kind (to the server itself, and relayed through it to
// another) and sends it again, 300 times for the watch: every replay is
// refused at once, and the server's open files come back to where they were.
func TestReplayedPreamblesRefused(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{Key: true})
	cl.WaitMembers(2)
	raw, err := os.ReadFile(cl.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := security.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	srv, other := cl.Servers[0], cl.Servers[1]
	self, _ := ident.ParseID(srv.ID)
	far, _ := ident.ParseID(other.ID)
	replay := func(preamble []byte) error {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := wire.ReadGreeting(c); err != nil {
			return err
		}
		c.Write(preamble)
		err = wire.ReadStatus(c)
		var r *wire.Refusal
		if !errors.As(err, &r) || r.Code != wire.CodeBadKey {
			return fmt.Errorf("a replayed preamble: %v, want refused as a wrong key", err)
		}
		return nil
	}
	for _, tc := range []struct {
		kind   wire.Kind
		target ident.ID
	}{
		{wire.KindRPC, self}, {wire.KindStream, self}, {wire.KindGossip, 0}, {wire.KindWatch, self},
		{wire.KindRPC, far}, {wire.KindStream, far},
	} {
		if err := replay(capture(t, srv.Addr, tc.kind, tc.target, key)); err != nil {
			t.Errorf("kind %c for %s: %v", tc.kind, tc.target, err)
		}
	}
	before := openFiles(t, srv.Cmd.Process.Pid)
	watch := capture(t, srv.Addr, wire.KindWatch, self, key)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 300 {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		held = append(held, c)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := wire.ReadGreeting(c); err != nil {
			t.Fatalf("greeting %d: %v", i, err)
		}
		c.Write(watch)
		if err := wire.ReadStatus(c); err == nil {
			t.Fatalf("replayed watch %d was accepted", i)
		}
	}
	testsupport.Eventually(t, 5*time.Second, func() error {
		if n := openFiles(t, srv.Cmd.Process.Pid); n > before+5 {
			return fmt.Errorf("the server has %d open files, %d before 300 replayed watches", n, before)
		}
		return nil
	})
	if r := cl.Run("ls", "/"); r.Code != 0 || len(testcluster.Lines(r.Stdout)) != 2 {
		t.Fatalf("ls after the replays: %+v", r)
	}
}
