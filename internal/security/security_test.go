package security

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustKey(t *testing.T, secret string) *Key {
	t.Helper()
	k, err := New([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGenerateIsRandomAndLoadable(t *testing.T) {
	a, b := Generate(), Generate()
	if a == b {
		t.Fatal("two generated keys are equal")
	}
	if _, err := New([]byte(a)); err != nil {
		t.Fatalf("generated key refused: %v", err)
	}
}

// TestOnlyKeygenKeysAccepted: a password, a short or long secret, or
// anything not base64 is refused, saying how to make a key.
func TestOnlyKeygenKeysAccepted(t *testing.T) {
	for name, secret := range map[string]string{
		"password":           "correct horse battery staple",
		"short":              "short",
		"16 bytes in base64": base64.StdEncoding.EncodeToString(make([]byte, 16)),
		"64 bytes in base64": base64.StdEncoding.EncodeToString(make([]byte, 64)),
		"hex of 32 bytes":    strings.Repeat("ab", 32),
		"url-safe base64":    strings.ReplaceAll(strings.ReplaceAll(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\xfb\xff", 16))), "+", "-"), "/", "_"),
		"empty":              "",
	} {
		_, err := New([]byte(secret))
		if !errors.Is(err, ErrNotAKey) || !strings.Contains(err.Error(), "circuit keygen") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Parse([]byte("  " + Generate() + "\n")); err != nil {
		t.Errorf("a key file as keygen writes it: %v", err)
	}
}

func TestKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o640, false}, {0o644, false}, {0o604, false}, {0o660, false}} {
		p := filepath.Join(dir, fmt.Sprintf("key-%o", tc.mode))
		if err := os.WriteFile(p, []byte(Generate()), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckFileMode(p)
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "chmod 600")) {
			t.Errorf("mode %04o: %v", tc.mode, err)
		}
	}
}

func TestDerivationIsDeterministicAndSeparated(t *testing.T) {
	secret := Generate()
	k1, k2 := mustKey(t, secret), mustKey(t, secret)
	if string(k1.GossipKey()) != string(k2.GossipKey()) || string(k1.MAC([]byte("x"))) != string(k2.MAC([]byte("x"))) {
		t.Fatal("same secret derived different keys")
	}
	subkeys := map[string][]byte{"lan": k1.GossipKey(), "wan": k1.WANGossipKey(), "discovery": k1.DiscoveryKey(), "mac": k1.macKey, "console": k1.ConsoleKey(), "ca seed": k1.caKey.Seed()}
	seen := map[string]string{}
	for name, b := range subkeys {
		if len(b) != 32 {
			t.Errorf("subkey %s has %d bytes", name, len(b))
		}
		if other, ok := seen[string(b)]; ok {
			t.Errorf("subkeys %s and %s are the same", name, other)
		}
		seen[string(b)] = name
	}
	k3 := mustKey(t, Generate())
	if k3.VerifyMAC([]byte("x"), k1.MAC([]byte("x"))) {
		t.Fatal("a MAC verified under a different key")
	}
	if !k2.VerifyMAC([]byte("x"), k1.MAC([]byte("x"))) {
		t.Fatal("a MAC failed under the same key")
	}
}

// handshake runs a real TLS handshake over loopback TCP.
func handshake(t *testing.T, server, client *Key) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, server.ServerTLS())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = tc.HandshakeContext(ctx)
		if err == nil {
			_, err = tc.Write([]byte("ok"))
		}
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, client.ClientTLS())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	clientErr = tc.HandshakeContext(ctx)
	if clientErr == nil {
		buf := make([]byte, 2)
		_, clientErr = tc.Read(buf) // TLS 1.3 reports a refused client certificate here
	}
	return <-done, ExplainTLS(clientErr)
}

func TestMutualTLS(t *testing.T) {
	secret := Generate()
	a := mustKey(t, secret)
	b := mustKey(t, secret) // another process, same file
	other := mustKey(t, Generate())
	if se, ce := handshake(t, a, b); se != nil || ce != nil {
		t.Fatalf("same key: server %v, client %v", se, ce)
	}
	if se, ce := handshake(t, a, other); se == nil || ce == nil {
		t.Fatalf("different keys were accepted: server %v, client %v", se, ce)
	} else if !errors.Is(ce, ErrKeyMismatch) {
		t.Fatalf("client error does not name the key mismatch: %v", ce)
	}
}
