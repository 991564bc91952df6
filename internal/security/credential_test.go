package security

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCredentialRoundTrip(t *testing.T) {
	k := mustKey(t, Generate())
	b, err := k.Mint(Claims{Name: "alice", Parent: "key", Worker: "R0123456789abcdef", Server: "X0123456789abcdef"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCredential(b)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Claims()
	if got.Name != "alice" || got.Parent != "key" || got.Worker != "R0123456789abcdef" || got.Server != "X0123456789abcdef" || len(got.ID) != 32 {
		t.Fatalf("claims %+v", got)
	}
	if d := time.Until(got.NotAfter); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("expires in %v, want an hour", d)
	}
	// A credential made under it names it, and its chain, in its own.
	b2, err := k.Mint(Claims{Name: "alice's job", Chain: got.Under()}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseCredential(b2)
	if err != nil {
		t.Fatal(err)
	}
	if l := c2.Claims().Lineage(); len(l) != 2 || l[1] != got.ID {
		t.Fatalf("lineage %v, want its own ID and %s", l, got.ID)
	}
	long := Claims{ID: "x", Chain: make([]string, MaxChain)}
	if u := long.Under(); len(u) != MaxChain || u[MaxChain-1] != "x" {
		t.Fatalf("a full chain extended to %v", u)
	}
	if rc, err := ReadClaims(b2); err != nil || rc.ID != c2.Claims().ID {
		t.Fatalf("ReadClaims: %+v, %v", rc, err)
	}
	if _, err := ReadClaims([]byte("not pem")); !errors.Is(err, ErrNotACredential) {
		t.Fatalf("ReadClaims of junk: %v", err)
	}
	msg := []byte("greeting and preamble")
	if claims, err := k.Verify(c.DER(), msg, c.Sign(msg)); err != nil || claims.ID != got.ID {
		t.Fatalf("verify: %+v, %v", claims, err)
	}
	if _, err := k.Verify(c.DER(), []byte("another connection"), c.Sign(msg)); err == nil {
		t.Fatal("a signature over another message verified")
	}
	if _, err := mustKey(t, Generate()).Verify(c.DER(), msg, c.Sign(msg)); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("verified by another cluster's key: %v", err)
	}
	// The key holder's own leaf is not a credential.
	leaf, err := k.certificate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.CheckCredential(leaf.Leaf); !errors.Is(err, ErrNotACredential) {
		t.Fatalf("a key holder's leaf taken for a credential: %v", err)
	}
}

func TestMintBounds(t *testing.T) {
	k := mustKey(t, Generate())
	for name, tc := range map[string]struct {
		c    Claims
		life time.Duration
	}{
		"no name":   {Claims{}, time.Hour},
		"no life":   {Claims{Name: "a"}, 0},
		"too long":  {Claims{Name: "a"}, MaxCredentialLife + time.Hour},
		"negative ": {Claims{Name: "a"}, -time.Second},
	} {
		if _, err := k.Mint(tc.c, tc.life); err == nil {
			t.Errorf("%s: minted", name)
		}
	}
}

// TestParseCredentialRefuses: files that are not whole credentials of one
// authority, or that have expired, are refused, saying why.
func TestParseCredentialRefuses(t *testing.T) {
	k, other := mustKey(t, Generate()), mustKey(t, Generate())
	good, err := k.Mint(Claims{Name: "alice"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Mint(Claims{Name: "mallory"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	blocks := func(b []byte) map[string][]byte {
		out := map[string][]byte{}
		for {
			var p *pem.Block
			if p, b = pem.Decode(b); p == nil {
				return out
			}
			out[p.Type] = pem.EncodeToMemory(p)
		}
	}
	g, f := blocks(good), blocks(foreign)
	short, err := k.Mint(Claims{Name: "brief"}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // expiry is the subject
	for name, tc := range map[string]struct {
		file []byte
		want string
	}{
		"empty":                {nil, "holds a"},
		"a key file":           {[]byte(Generate()), "holds a"},
		"no private key":       {append(bytes.Clone(g[pemCredential]), g[pemAuthority]...), "holds a"},
		"another's key":        {append(append(bytes.Clone(g[pemCredential]), g[pemAuthority]...), f["PRIVATE KEY"]...), "does not match"},
		"another authority":    {append(append(bytes.Clone(g[pemCredential]), f[pemAuthority]...), g["PRIVATE KEY"]...), "not a circuit credential"},
		"an unknown block":     {append(bytes.Clone(good), pem.EncodeToMemory(&pem.Block{Type: "SECRET", Bytes: []byte{1}})...), "unexpected block"},
		"a damaged credential": {pem.EncodeToMemory(&pem.Block{Type: pemCredential, Bytes: []byte("junk")}), "not a circuit credential"},
		"expired":              {short, "expired"},
	} {
		if _, err := ParseCredential(tc.file); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
}

// TestCredentialTLS: a credential's holder and a key's holder complete
// mutual TLS; the server sees the credential's claims; a credential's
// certificate cannot serve TLS to clients, so its holder cannot pose as a
// server.
func TestCredentialTLS(t *testing.T) {
	k := mustKey(t, Generate())
	b, err := k.Mint(Claims{Name: "alice"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "alice.cred")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cred, err := LoadCredentialFile(path)
	if err != nil {
		t.Fatal(err)
	}
	handshake := func(server, client *tls.Config) (tls.ConnectionState, error) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan error, 1)
		sc := tls.Server(a, server)
		go func() { done <- sc.HandshakeContext(ctx) }()
		cerr := tls.Client(b, client).HandshakeContext(ctx)
		serr := <-done
		return sc.ConnectionState(), errors.Join(cerr, serr)
	}
	st, err := handshake(k.ServerTLS(), cred.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := PeerClaims(st); !ok || c.Name != "alice" {
		t.Fatalf("the server saw %+v, %v", c, ok)
	}
	st, err = handshake(k.ServerTLS(), k.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := PeerClaims(st); ok {
		t.Fatal("a key holder seen as a credential")
	}
	posing := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cred.Current().cert}}
	if _, err := handshake(posing, k.ClientTLS()); err == nil {
		t.Fatal("a credential served TLS to a key holder")
	}

	// An open credential file is refused, as an open key file is.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredentialFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("an open credential file: %v", err)
	}
}
