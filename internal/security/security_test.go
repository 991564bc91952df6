package security

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
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

func TestShortKeyRefused(t *testing.T) {
	_, err := New([]byte("short"))
	if err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("want a length error, got %v", err)
	}
}

func TestDerivationIsDeterministicAndSeparated(t *testing.T) {
	k1, k2 := mustKey(t, "0123456789abcdef0123"), mustKey(t, "0123456789abcdef0123")
	if string(k1.GossipKey()) != string(k2.GossipKey()) || string(k1.MAC([]byte("x"))) != string(k2.MAC([]byte("x"))) {
		t.Fatal("same secret derived different keys")
	}
	if string(k1.GossipKey()) == string(k1.DiscoveryKey()) || string(k1.GossipKey()) == string(k1.macKey) {
		t.Fatal("subkeys are not independent")
	}
	k3 := mustKey(t, "another secret of enough length")
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
	a := mustKey(t, "the cluster secret 1234")
	b := mustKey(t, "the cluster secret 1234") // another process, same file
	other := mustKey(t, "a different secret 5678")
	if se, ce := handshake(t, a, b); se != nil || ce != nil {
		t.Fatalf("same key: server %v, client %v", se, ce)
	}
	if se, ce := handshake(t, a, other); se == nil || ce == nil {
		t.Fatalf("different keys were accepted: server %v, client %v", se, ce)
	} else if !errors.Is(ce, ErrKeyMismatch) {
		t.Fatalf("client error does not name the key mismatch: %v", ce)
	}
}
