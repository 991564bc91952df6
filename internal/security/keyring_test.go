package security

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRing: a ring accepts every installed key and uses one; the key in
// use cannot be removed, nor an absent one used; every change is kept in
// its file, which a restart reads in place of the key it is given.
func TestRing(t *testing.T) {
	dir := t.TempDir()
	a, b := mustKey(t, Generate()), mustKey(t, Generate())
	if a.ID() == b.ID() || len(a.ID()) != 16 || strings.Contains(a.ID(), a.Text()) {
		t.Fatalf("IDs %q and %q", a.ID(), b.ID())
	}
	r, warn, err := OpenRing(dir, a)
	if err != nil || warn != "" {
		t.Fatal(err, warn)
	}
	changes := 0
	r.Watch(func() { changes++ })
	msg := []byte("greeting and preamble")
	if r.AcceptMAC(msg, b.MAC(msg)) != nil {
		t.Fatal("a key not installed was accepted")
	}
	if added, err := r.Install(b); !added || err != nil {
		t.Fatalf("install: %v %v", added, err)
	}
	if added, _ := r.Install(b); added {
		t.Fatal("installed twice")
	}
	if r.AcceptMAC(msg, b.MAC(msg)) != b || r.AcceptMAC(msg, a.MAC(msg)) != a || r.Use() != a {
		t.Fatal("after install: want both accepted, A in use")
	}
	if _, err := r.Remove(a.ID()); !errors.Is(err, ErrKeyring) {
		t.Fatalf("removing the key in use: %v", err)
	}
	if _, err := r.UseKey(mustKey(t, Generate()).ID()); !errors.Is(err, ErrKeyring) {
		t.Fatalf("using a key not installed: %v", err)
	}
	if changed, err := r.UseKey(b.ID()); !changed || err != nil || r.Use() != b {
		t.Fatalf("use B: %v %v", changed, err)
	}
	// A credential made under A is accepted until A is removed.
	cb, err := a.Mint(Claims{Name: "alice", Role: "read"}, 3600e9)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := ParseCredential(cb)
	if err != nil {
		t.Fatal(err)
	}
	if _, k, err := r.AcceptCredential(cred.DER(), msg, cred.Sign(msg)); err != nil || k != a {
		t.Fatalf("a credential of A while A is installed: %v", err)
	}
	if removed, err := r.Remove(a.ID()); !removed || err != nil {
		t.Fatalf("remove A: %v %v", removed, err)
	}
	if r.AcceptMAC(msg, a.MAC(msg)) != nil {
		t.Fatal("A accepted after its removal")
	}
	if _, _, err := r.AcceptCredential(cred.DER(), msg, cred.Sign(msg)); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("a credential of a removed key: %v", err)
	}
	if changes != 3 {
		t.Fatalf("watcher told %d times, want 3", changes)
	}
	if l := r.List(); len(l) != 1 || l[0].ID != b.ID() || !l[0].InUse {
		t.Fatalf("list %+v", l)
	}
	// A restart with A reads the ring kept in dir: B alone, in use.
	again, warn, err := OpenRing(dir, a)
	if err != nil || again.Use().ID() != b.ID() || len(again.Keys()) != 1 || !strings.Contains(warn, "not in the keyring") {
		t.Fatalf("reopened: %v, %q", err, warn)
	}
	if fi, err := os.Stat(filepath.Join(dir, "keyring")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the ring's file: %v %v", fi, err)
	}
	if r, _, err := OpenRing(dir, nil); r != nil || err != nil {
		t.Fatal("a server without a key has a ring")
	}
	os.WriteFile(filepath.Join(dir, "keyring"), []byte("{"), 0o600)
	if _, _, err := OpenRing(dir, a); err == nil {
		t.Fatal("opened a broken ring")
	}
}
