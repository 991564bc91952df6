package server

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/testsupport"
)

// TestKeyringRemakesProcessCredentials: when a new key comes into use, a
// running process's credential is made again under it, and its holder
// follows, so that it still works once the old key is removed; a
// credential made under the removed key is refused.
func TestKeyringRemakesProcessCredentials(t *testing.T) {
	textA, keyA := newKey(t)
	textB, keyB := newKey(t)
	s := startServer(t, Config{Key: keyA})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := client.Connect(ctx, client.Options{Addr: s.URL().String(), Key: []byte(textA)})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	self := "/" + s.ID().String()
	h, err := admin.MakeProcAt(ctx, self+"/job", client.Cmd{Path: "/bin/sleep", Args: []string{"60"}, NoStdin: true, Cred: true, Scrub: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Signal(ctx, "KILL")
	file := credOf(t, h)
	worker, err := client.Connect(ctx, client.Options{Addr: s.URL().String(), CredFile: file})
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
	person := mintFile(t, keyA, security.Claims{Name: "alice", Role: "read"})

	for _, step := range []struct{ action, id string }{{client.KeyringInstall, ""}, {client.KeyringUse, keyB.ID()}, {client.KeyringRemove, keyA.ID()}} {
		key := []byte(nil)
		if step.action == client.KeyringInstall {
			key = []byte(textB)
		}
		if _, changed, err := admin.Keyring(ctx, s.ID().String(), step.action, key, step.id); err != nil || !changed {
			t.Fatalf("keyring %s: %v, %v", step.action, changed, err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := security.ParseCredential(b)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("m")
	if _, err := keyB.Verify(c.DER(), msg, c.Sign(msg)); err != nil {
		t.Fatalf("the process's credential after B came into use: %v", err)
	}
	// Its holder reads the new file (within a second) and dials in with it.
	testsupport.Eventually(t, 5*time.Second, func() error {
		_, err := client.Connect(ctx, client.Options{Addr: s.URL().String(), CredFile: file})
		return err
	})
	again, err := client.Connect(ctx, client.Options{Addr: s.URL().String(), CredFile: person})
	var ae *client.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("a credential of the removed key: %v, want refused", err)
	}
	if again != nil {
		again.Close()
	}
	// The admin's connection, opened under A, is closed; B works.
	testsupport.Eventually(t, 5*time.Second, func() error {
		if _, _, err := admin.Keyring(ctx, s.ID().String(), client.KeyringList, nil, ""); err == nil {
			return errors.New("a connection opened under the removed key still works")
		}
		return nil
	})
	adminB, err := client.Connect(ctx, client.Options{Addr: s.URL().String(), Key: []byte(textB)})
	if err != nil {
		t.Fatal(err)
	}
	defer adminB.Close()
	if _, _, err := adminB.Keyring(ctx, s.ID().String(), client.KeyringRemove, nil, keyB.ID()); !errors.Is(err, client.ErrPrecondition) {
		t.Fatalf("removing the key in use: %v", err)
	}
}
