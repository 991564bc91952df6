package server

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/testsupport"
)

// TestRevocation: a revoked credential, and every credential made under
// it, is refused by every server within 2 s, its open connections are
// closed, the list survives a restart in -var and reaches a server that
// joins later; bad revocations are refused.
func TestRevocation(t *testing.T) {
	text, key := newKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	varA := t.TempDir()
	a := startServer(t, Config{Key: key, VarDir: varA})
	b := startServer(t, Config{Key: key, Join: []string{a.URL().String()}})
	testsupport.Eventually(t, 10*time.Second, func() error {
		if n := len(b.cluster.Members()); n != 2 {
			return errors.New("b sees no a")
		}
		return nil
	})
	admin, err := client.Connect(ctx, client.Options{Addr: a.URL().String(), Key: []byte(text)})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	aliceFile := mintFile(t, key, security.Claims{Name: "alice", Role: "operate"})
	alice, err := client.Connect(ctx, client.Options{Addr: b.URL().String(), CredFile: aliceFile})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bPath := "/" + b.ID().String()
	sleep := client.Cmd{Path: "/bin/sleep", Args: []string{"60"}, NoStdin: true, Scrub: true, Cred: true}
	h, err := alice.MakeProcAt(ctx, bPath+"/job", sleep)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.ProcAt(bPath+"/job").Signal(ctx, "KILL")
	child, err := client.Connect(ctx, client.Options{Addr: a.URL().String(), CredFile: credOf(t, h)})
	if err != nil {
		t.Fatal(err)
	}
	defer child.Close()
	waited := make(chan error, 1)
	go func() { _, err := h.Wait(ctx); waited <- err }() // holds a connection open

	claims, err := security.ReadClaims(mustRead(t, aliceFile))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, added, err := admin.Revoke(ctx, claims.ID, claims.Name, claims.NotAfter)
	if err != nil || !added || r.By != "key" || r.Name != "alice" {
		t.Fatalf("revoke: %+v, %v, %v", r, added, err)
	}
	if _, added, err := admin.Revoke(ctx, claims.ID, "", time.Time{}); err != nil || added {
		t.Fatalf("revoking again: added %v, %v; want in force already", added, err)
	}
	refused := func(c *client.Client, at *Server) error {
		_, err := c.List(ctx, "/"+at.ID().String())
		var pe *client.PermissionError
		var ae *client.AuthError
		switch {
		case err == nil:
			return errors.New("still allowed")
		case errors.As(err, &pe) && strings.Contains(pe.Reason, "was revoked at"):
			return nil
		case errors.As(err, &ae) && strings.Contains(err.Error(), "was revoked at"):
			return nil
		}
		t.Fatalf("refused, but not as revoked: %v", err)
		return nil
	}
	for _, tc := range []struct {
		name string
		c    *client.Client
		at   *Server
	}{{"alice at b", alice, b}, {"alice at a", alice, a}, {"her process's credential at a", child, a}, {"her process's at b", child, b}} {
		testsupport.Eventually(t, 2*time.Second-time.Since(start), func() error { return refused(tc.c, tc.at) })
	}
	select {
	case err := <-waited:
		if err == nil {
			t.Fatal("the wait of a revoked credential ended well")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the open connection of a revoked credential stayed open")
	}
	t.Logf("refused everywhere %v after revoking", time.Since(start))

	// Bad revocations.
	if _, _, err := admin.Revoke(ctx, "nothex", "", time.Time{}); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("revoking a bad ID: %v", err)
	}
	if _, _, err := admin.Revoke(ctx, strings.Repeat("ab", 16), "", time.Now().Add(-time.Minute)); !errors.Is(err, client.ErrBadRequest) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("revoking an expired credential: %v", err)
	}
	reader, err := client.Connect(ctx, client.Options{Addr: a.URL().String(), CredFile: mintFile(t, key, security.Claims{Name: "ro", Role: "operate"})})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if _, _, err := reader.Revoke(ctx, strings.Repeat("cd", 16), "", time.Time{}); !errors.Is(err, client.ErrDenied) {
		t.Errorf("revoking without role admin: %v", err)
	}

	// A restart keeps the list; a server joining later gets it.
	a.Stop()
	a2 := startServer(t, Config{Key: key, VarDir: varA})
	if _, ok := a2.revoked.Revoked([]string{claims.ID}); !ok {
		t.Fatal("a restarted server forgot the revocation kept in its -var")
	}
	c := startServer(t, Config{Key: key, Join: []string{b.URL().String()}})
	testsupport.Eventually(t, 5*time.Second, func() error {
		if _, ok := c.revoked.Revoked([]string{claims.ID}); !ok {
			return errors.New("a server that joined later does not list the revocation")
		}
		return nil
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
