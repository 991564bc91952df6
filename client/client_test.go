package client_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
	"github.com/circuit-project/circuit/internal/wire"
)

func TestMain(m *testing.M) { build.Main(m) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestViewAndForwarding(t *testing.T) {
	servers := testcluster.StartInProcess(t, 3, nil)
	c := client.Dial(servers[0].URL().String(), nil)
	defer c.Close()

	view := c.View()
	if len(view) != 3 {
		t.Fatalf("View has %d servers, want 3", len(view))
	}
	for _, s := range servers {
		a, ok := view[s.ID().String()]
		if !ok {
			t.Fatalf("View lacks %s", s.ID())
		}
		if a.Path() != "/"+s.ID().String() || a.ServerID() != s.ID().String() {
			t.Fatalf("anchor %q/%q for %s", a.Path(), a.ServerID(), s.ID())
		}
		// Peek at every server through the one dial-in server.
		info := a.Get().(*client.Server).Peek()
		if info.ID != s.ID().String() || info.URL != s.URL().String() || len(info.Members) != 3 {
			t.Fatalf("peek of %s through %s: %+v", s.ID(), servers[0].ID(), info)
		}
		if got := a.Addr(); got != s.URL().String() {
			t.Fatalf("Addr = %q, want %q", got, s.URL())
		}
	}
	w := c.Walk([]string{servers[1].ID().String(), "hi", "charlie"})
	if w.Path() != "/"+servers[1].ID().String()+"/hi/charlie" {
		t.Fatalf("Walk path %q", w.Path())
	}
	if len(w.View()) != 0 || w.Get() != nil {
		t.Fatal("an anchor never used holds something")
	}
	if got := client.Split("/X1/a/b"); strings.Join(got, ",") != "X1,a,b" {
		t.Fatalf("Split = %q", got)
	}
}

func TestListErrors(t *testing.T) {
	servers := testcluster.StartInProcess(t, 1, nil)
	c, err := client.Connect(ctx(t), client.Options{Addr: servers[0].URL().Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{"relative", "/" + servers[0].ID().String() + "//a", "/" + servers[0].ID().String() + "/../a", "/Xnothex"} {
		if _, err := c.List(ctx(t), p); !errors.Is(err, client.ErrBadRequest) {
			t.Errorf("List(%q) = %v, want ErrBadRequest", p, err)
		}
	}
	var lost *client.HostLostError
	if _, err := c.List(ctx(t), "/X0123456789abcdef"); !errors.As(err, &lost) || !strings.Contains(err.Error(), "not a member") {
		t.Errorf("List of an unknown server = %v, want HostLostError saying it is not a member", err)
	}
}

// TestLostHostVersusLostDialin checks the typed panics the seeds document.
func TestLostHostVersusLostDialin(t *testing.T) {
	servers := testcluster.StartInProcess(t, 2, nil)
	c := client.Dial(servers[0].URL().String(), nil)
	defer c.Close()
	other := c.Walk([]string{servers[1].ID().String()})
	other.Get().(*client.Server).Peek() // connected

	servers[1].Stop()
	var lost *client.HostLostError
	if err := recovered(func() { other.Get().(*client.Server).Peek() }); !errors.As(err, &lost) {
		t.Fatalf("peek of a stopped host panicked with %v, want *HostLostError", err)
	}
	if len(c.View()) != 1 {
		t.Fatal("the client should still work after losing another host")
	}

	servers[0].Stop()
	var dl *client.DialinLostError
	if err := recovered(func() { c.View() }); !errors.As(err, &dl) {
		t.Fatalf("View after the dial-in server stopped panicked with %v, want *DialinLostError", err)
	}
}

func recovered(f func()) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			err = errors.New("no panic")
			return
		}
		var ok bool
		if err, ok = r.(error); !ok {
			err = errors.New("panic value is not an error")
		}
	}()
	f()
	return nil
}

func TestKeys(t *testing.T) {
	secret := []byte(security.Generate())
	key, err := security.New(secret)
	if err != nil {
		t.Fatal(err)
	}
	servers := testcluster.StartInProcess(t, 2, key)
	addr := servers[0].URL().String()

	c, err := client.Connect(ctx(t), client.Options{Addr: addr, Key: secret})
	if err != nil {
		t.Fatalf("right key refused: %v", err)
	}
	// Through the relay, end to end.
	if _, err := c.ServerInfo(ctx(t), servers[1].ID().String()); err != nil {
		t.Fatalf("relayed peek with a key: %v", err)
	}
	c.Close()

	for name, k := range map[string][]byte{"no key": nil, "wrong key": []byte(security.Generate())} {
		start := time.Now()
		_, err := client.Connect(ctx(t), client.Options{Addr: addr, Key: k})
		var auth *client.AuthError
		if !errors.As(err, &auth) {
			t.Errorf("%s: Connect = %v, want *AuthError", name, err)
		}
		if time.Since(start) > 3*time.Second {
			t.Errorf("%s: refusal took %v", name, time.Since(start))
		}
	}
	// An unkeyed client of a keyed... and a keyed client of an unkeyed server.
	plain := testcluster.StartInProcess(t, 1, nil)
	if _, err := client.Connect(ctx(t), client.Options{Addr: plain[0].URL().String(), Key: secret}); err == nil || !strings.Contains(err.Error(), "without a key") {
		t.Errorf("keyed client of an unkeyed server: %v", err)
	}
}

func TestDialTimeouts(t *testing.T) {
	// A port that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, err = client.Connect(context.Background(), client.Options{Addr: ln.Addr().String()})
	var dl *client.DialinLostError
	if !errors.As(err, &dl) {
		t.Fatalf("Connect to a silent port = %v, want *DialinLostError", err)
	}
	if d := time.Since(start); d > client.DefaultDialTimeout+time.Second {
		t.Fatalf("Connect to a silent port took %v", d)
	}
	if err := recovered(func() { client.Dial("127.0.0.1:1", nil) }); !errors.As(err, &dl) {
		t.Fatalf("Dial of a closed port panicked with %v", err)
	}
	if os.Getenv("CIRCUIT_SKIP") != "" {
		t.Skip()
	}
}

// TestIdleAfterConnect leaves a new client unused for longer than a server
// waits for the first bytes of a connection; its first call must still work.
func TestIdleAfterConnect(t *testing.T) {
	servers := testcluster.StartInProcess(t, 1, nil)
	c, err := client.Connect(ctx(t), client.Options{Addr: servers[0].URL().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(wire.HandshakeTimeout + time.Second) // the idle time is what is tested
	if _, err := c.Members(ctx(t)); err != nil {
		t.Fatalf("first call after %v idle: %v", wire.HandshakeTimeout+time.Second, err)
	}
}
