package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/element/proc"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/wire"
)

// newKey makes a cluster key: its text, as a key file holds it, and the
// key loaded.
func newKey(t *testing.T) (string, *security.Key) {
	t.Helper()
	text := security.Generate()
	key, err := security.New([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return text, key
}

// credOf returns the file of the credential that the server gave the
// process h, from its environment.
func credOf(t *testing.T, h *client.ProcHandle) string {
	t.Helper()
	st, err := h.Peek(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range st.Cmd.Env {
		if v, ok := strings.CutPrefix(e, "CIRCUIT_CRED="); ok {
			return v
		}
	}
	t.Fatalf("the process's environment %q names no credential", st.Cmd.Env)
	return ""
}

// TestProcessCredential: a process started with Cmd.Cred gets a private
// credential file naming it and whoever asked; the credential works as a
// client, opens no gossip, is renewed in place while the process runs
// (a client holding the file follows), expires, and its file goes with
// the process.
func TestProcessCredential(t *testing.T) {
	text, key := newKey(t)
	const life = 3 * time.Second
	s := startServer(t, Config{Key: key, CredLife: life})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root, err := client.Connect(ctx, client.Options{Addr: s.URL().String(), Key: []byte(text)})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	worker := anchorfs.NewWorkerID()
	h, err := root.MakeProcAt(ctx, "/"+s.ID().String()+"/"+worker, client.Cmd{Path: "/bin/sleep", Args: []string{"60"}, NoStdin: true, Cred: true})
	if err != nil {
		t.Fatal(err)
	}
	path := credOf(t, h)
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Fatalf("%s: %v, %v, want mode %v", p, fi.Mode(), err, want)
		}
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := security.ParseCredential(first)
	if err != nil {
		t.Fatal(err)
	}
	if c := cred.Claims(); c.Name != "worker "+worker || c.Worker != worker || c.Parent != "key" || c.Server != s.ID().String() {
		t.Fatalf("claims %+v", c)
	}

	// As a client: it lists, and makes processes whose credentials name it
	// as their parent.
	wc, err := client.Connect(ctx, client.Options{Addr: s.URL().String(), CredFile: path})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if _, err := wc.Members(ctx); err != nil {
		t.Fatal(err)
	}
	child := anchorfs.NewWorkerID()
	ch, err := wc.MakeProcAt(ctx, "/"+s.ID().String()+"/"+child, client.Cmd{Path: "/bin/sleep", Args: []string{"60"}, NoStdin: true, Cred: true, Scrub: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(credOf(t, ch))
	if err != nil {
		t.Fatal(err)
	}
	if cc, err := security.ParseCredential(b); err != nil || cc.Claims().Parent != "worker "+worker {
		t.Fatalf("the child's credential: %+v, %v; want its parent to be worker %s", cc.Claims(), err, worker)
	}
	ch.Signal(ctx, "KILL")

	// No gossip with a credential.
	held, err := security.LoadCredentialFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r *wire.Refusal
	if _, err := wire.Dial(ctx, s.URL().Addr, wire.KindGossip, 0, held); !errors.As(err, &r) || r.Code != wire.CodeDenied {
		t.Fatalf("gossip with a credential: %v, want refused", err)
	}

	// Renewed in place before it expires; a client that holds the file
	// connects after the first credential's end.
	testsupport.Eventually(t, life, func() error {
		if b, err := os.ReadFile(path); err != nil || bytes.Equal(b, first) {
			return fmt.Errorf("the credential is not renewed (%v)", err)
		}
		return nil
	})
	old := filepath.Join(t.TempDir(), "old.cred")
	if err := os.WriteFile(old, first, 0o600); err != nil {
		t.Fatal(err)
	}
	expired, err := security.LoadCredentialFile(old)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(cred.Claims().NotAfter.Add(100 * time.Millisecond))) // the wait is the test: expiry
	if _, err := wire.Dial(ctx, s.URL().Addr, wire.KindRPC, 0, expired); !errors.As(err, &r) || !r.IsAuth() || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("dialling with an expired credential: %v, want refused as expired", err)
	}
	again, err := client.Connect(ctx, client.Options{Addr: s.URL().String(), CredFile: path})
	if err != nil {
		t.Fatalf("with the renewed file: %v", err)
	}
	again.Close()

	// The file goes with the process.
	if err := h.Signal(ctx, "KILL"); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 5*time.Second, func() error {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("the credential's file is still there (%v)", err)
		}
		return nil
	})
}

// TestNoCredentialWithoutKey: an unkeyed server has nothing to give.
func TestNoCredentialWithoutKey(t *testing.T) {
	s := startServer(t, Config{})
	pe, err := s.makeProc("/"+s.ID().String()+"/job", proc.Cmd{Path: "/bin/sleep", Args: []string{"60"}, NoStdin: true, Cred: true}, caller{}, nil, spawned{})
	if err != nil {
		t.Fatal(err)
	}
	defer pe.Scrub()
	for _, e := range pe.Cmd().Env {
		if strings.HasPrefix(e, "CIRCUIT_CRED=") {
			t.Fatalf("an unkeyed server gave a credential: %q", e)
		}
	}
}
