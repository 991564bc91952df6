package wire

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/security"
)

// key makes a new random key; s only names it in the test.
func key(t testing.TB, s string) *security.Key {
	t.Helper()
	k, err := security.New([]byte(security.Generate()))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPreambleRoundTripAndCheck(t *testing.T) {
	k1, k2 := key(t, "first secret of the cluster"), key(t, "second secret, another one")
	target := ident.ID(0x0123456789abcdef)
	c1, c2 := credential(t, k1, "alice"), credential(t, k2, "bob")
	cases := []struct {
		name   string
		kind   Kind
		signer security.Auth
		server *security.Key
		want   Code
	}{
		{"plain", KindRPC, nil, nil, CodeOK},
		{"keyed", KindRPC, k1, k1, CodeOK},
		{"no key at client", KindRPC, nil, k1, CodeKeyRequired},
		{"wrong key", KindRPC, k2, k1, CodeBadKey},
		{"no key at server", KindRPC, k1, nil, CodeNoKeyHere},
		{"credential", KindRPC, c1, k1, CodeOK},
		{"credential's stream", KindStream, c1, k1, CodeOK},
		{"credential's watch", KindWatch, c1, k1, CodeOK},
		{"credential of another cluster", KindRPC, c2, k1, CodeBadKey},
		{"credential at a server without key", KindRPC, c1, nil, CodeNoKeyHere},
		{"credential's gossip", KindGossip, c1, k1, CodeDenied},
		{"credential's WAN gossip", KindGossipWAN, c1, k1, CodeDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGreeting(target, tc.server != nil)
			p := NewPreamble(tc.kind, target, 1, g, tc.signer)
			got, err := ReadPreamble(bytes.NewReader(p.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			_, isCred := tc.signer.(*security.CredentialFile)
			if got.Kind != tc.kind || got.Target != target || got.Hop != 1 || got.Keyed != (tc.signer != nil) || got.Cred != isCred {
				t.Fatalf("read back %+v", got)
			}
			r := got.Check(g, tc.server)
			if code := CodeOK; r != nil {
				code = r.Code
				if code != tc.want {
					t.Fatalf("code %d (%s), want %d", code, r.Msg, tc.want)
				}
			} else if tc.want != CodeOK {
				t.Fatalf("accepted, want code %d", tc.want)
			}
			if r == nil && isCred && (got.Claims == nil || got.Claims.Name != "alice") {
				t.Fatalf("accepted credential's claims %+v, want alice's", got.Claims)
			}
		})
	}
}

// credential mints a credential named name under k and loads it from its
// file.
func credential(t testing.TB, k *security.Key, name string) *security.CredentialFile {
	t.Helper()
	b, err := k.Mint(security.Claims{Name: name, Parent: "key"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".cred")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := security.LoadCredentialFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCredentialPreambleTamperedOrReplayed(t *testing.T) {
	k := key(t, "")
	c := credential(t, k, "alice")
	g := NewGreeting(7, true)
	good := NewPreamble(KindRPC, 7, 0, g, c).Bytes()
	// Every byte changed, of the fixed part, the certificate and the
	// signature, is refused (or does not parse).
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x20
		p, err := ReadPreamble(bytes.NewReader(b))
		if err != nil {
			continue
		}
		if r := p.Check(g, k); r == nil {
			t.Fatalf("byte %d changed, still accepted", i)
		}
	}
	p, err := ReadPreamble(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Check(NewGreeting(7, true), k); r == nil || r.Code != CodeBadKey {
		t.Fatalf("replayed on another connection: %v, want refused", r)
	}
}

// TestTamperedPreambleRefused changes each byte the MAC covers, in the
// preamble and in the greeting it answers: every change is refused, the hop
// count included.
func TestTamperedPreambleRefused(t *testing.T) {
	k := key(t, "first secret of the cluster")
	g := NewGreeting(42, true)
	p := NewPreamble(KindRPC, 42, 0, g, k)
	if r := p.Check(g, k); r != nil {
		t.Fatalf("the untouched preamble: %v", r)
	}
	for i := 0; i < PreambleLen; i++ {
		b := append([]byte{}, p.Bytes()...)
		b[i] ^= 1
		got, err := ReadPreamble(bytes.NewReader(b))
		if err != nil {
			continue // malformed: refused before the MAC
		}
		if r := got.Check(g, k); r == nil {
			t.Errorf("a preamble with byte %d changed passed", i)
		}
	}
	for i := 0; i < GreetingLen; i++ {
		h := g
		h.raw[i] ^= 1
		if r := p.Check(h, k); r == nil || r.Code != CodeBadKey {
			t.Errorf("a preamble checked against a greeting with byte %d changed passed: %v", i, r)
		}
	}
}

// TestRelayOrigin: a relay's preamble carries the original dialler's
// address under its MAC: it survives the wire, a changed byte of it is
// refused, and a dialler that is no relay (hop 0) cannot name one.
func TestRelayOrigin(t *testing.T) {
	k := key(t, "the cluster")
	g := NewGreeting(42, true)
	p := NewRelayPreamble(KindStream, 42, 1, g, k, "10.0.0.9:41234")
	got, err := ReadPreamble(bytes.NewReader(p.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Check(g, k); r != nil || got.Origin != "10.0.0.9:41234" {
		t.Fatalf("relayed preamble: %v, origin %q", r, got.Origin)
	}
	b := p.Bytes()
	for i := PreambleLen + 1; i < len(b); i++ {
		c := append([]byte{}, b...)
		c[i] ^= 1
		got, err := ReadPreamble(bytes.NewReader(c))
		if err != nil {
			continue
		}
		if r := got.Check(g, k); r == nil {
			t.Errorf("an origin with byte %d changed passed as %q", i, got.Origin)
		}
	}
	unkeyed := NewRelayPreamble(KindRPC, 42, 1, g, nil, "127.0.0.1:1")
	if got, err := ReadPreamble(bytes.NewReader(unkeyed.Bytes())); err != nil || got.Origin != "127.0.0.1:1" {
		t.Fatalf("unkeyed relayed preamble: %+v, %v", got, err)
	}
	fake := NewRelayPreamble(KindRPC, 42, 0, g, k, "10.0.0.9:1")
	if _, err := ReadPreamble(bytes.NewReader(fake.Bytes())); !errors.Is(err, ErrBadPreamble) {
		t.Fatalf("an origin at hop 0: %v", err)
	}
	if p := NewRelayPreamble(KindRPC, 42, 1, g, k, strings.Repeat("x", MaxOriginLen+1)); p.Origin != "" {
		t.Fatal("an origin over the limit was sent")
	}
}

// TestReplayRefused: a preamble captured on one connection, sent on
// another (a new greeting, so a new challenge), is refused, for every kind;
// also on another server.
func TestReplayRefused(t *testing.T) {
	k := key(t, "the cluster")
	for _, kind := range []Kind{KindRPC, KindGossip, KindGossipWAN, KindStream, KindWatch} {
		first := NewGreeting(7, true)
		captured := NewPreamble(kind, 7, 0, first, k).Bytes()
		for _, again := range []Greeting{NewGreeting(7, true), NewGreeting(8, true)} {
			p, err := ReadPreamble(bytes.NewReader(captured))
			if err != nil {
				t.Fatal(err)
			}
			if r := p.Check(again, k); r == nil || r.Code != CodeBadKey {
				t.Errorf("kind %c replayed to server %s: %v", kind, again.ID, r)
			}
		}
	}
}

func TestGreeting(t *testing.T) {
	g := NewGreeting(0x0123456789abcdef, true)
	got, err := ReadGreeting(bytes.NewReader(g.Bytes()))
	if err != nil || got.ID != g.ID || !got.Keyed || got.raw != g.raw {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if h := NewGreeting(g.ID, true); h.raw == g.raw {
		t.Fatal("two greetings with the same challenge")
	}
	// Whatever a service that is not circuit sends first, the error says
	// so and shows none of it.
	const secret = "SECRET-TOKEN-0123456789"
	for name, b := range map[string][]byte{
		"banner":    []byte("220 mail.example ESMTP " + secret + "\r\n"),
		"old magic": append([]byte("CIR1"), []byte(secret)...),
		"short":     []byte("CIR2" + "x"),
		"bad flags": append(append([]byte("CIR2"), 0x80), []byte(secret)...),
	} {
		_, err := ReadGreeting(bytes.NewReader(b))
		if !errors.Is(err, ErrNotCircuit) || bytes.Contains([]byte(err.Error()), []byte("SECRET")) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestBadPreambles(t *testing.T) {
	good := NewPreamble(KindGossip, 0, 0, NewGreeting(1, false), nil).Bytes()
	for name, b := range map[string][]byte{
		"short":      good[:10],
		"bad magic":  append([]byte("HTTP"), good[4:]...),
		"bad kind":   append(append([]byte{}, good[:4]...), append([]byte{'Z'}, good[5:]...)...),
		"bad flags":  append(append([]byte{}, good[:5]...), append([]byte{0x80}, good[6:]...)...),
		"protocol 1": append([]byte("CIR1"), good[4:]...),
		"empty":      nil,
	} {
		if _, err := ReadPreamble(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestStatus(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteStatus(&buf, nil); err != nil {
		t.Fatal(err)
	}
	long := string(bytes.Repeat([]byte("x"), 400))
	WriteStatus(&buf, &Refusal{Code: CodeUnknownServer, Msg: long})
	if err := ReadStatus(&buf); err != nil {
		t.Fatalf("OK read as %v", err)
	}
	err := ReadStatus(&buf)
	var r *Refusal
	if !errors.As(err, &r) || r.Code != CodeUnknownServer || len(r.Msg) != 255 {
		t.Fatalf("refusal read as %v", err)
	}
	if err := ReadStatus(bytes.NewReader([]byte{3, 200, 'a'})); err == nil {
		t.Fatal("a truncated refusal was accepted")
	}
}

// FuzzReadPreamble: whatever arrives, reading a preamble never panics, reads
// at most PreambleLen bytes, and what it accepts survives a round trip.
func FuzzReadPreamble(f *testing.F) {
	k := key(f, "first secret of the cluster")
	g := NewGreeting(7, true)
	f.Add(NewPreamble(KindRPC, 7, 0, g, nil).Bytes())
	f.Add(NewPreamble(KindStream, 0, 0, g, k).Bytes())
	f.Add(NewPreamble(KindRPC, 0, 0, g, credential(f, k, "alice")).Bytes())
	f.Add(NewRelayPreamble(KindStream, 7, 1, g, k, "10.1.2.3:4567").Bytes())
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		p, err := ReadPreamble(r)
		if read := len(b) - r.Len(); read > PreambleLen+2+MaxCertLen+64+1+MaxOriginLen {
			t.Fatalf("read %d bytes", read)
		}
		if err != nil {
			return
		}
		if read := len(b) - r.Len(); !bytes.Equal(p.Bytes(), b[:read]) {
			t.Fatal("round trip changed the preamble")
		}
		p.Check(g, k)
		p.Check(g, nil)
	})
}

// FuzzReadGreeting: whatever a peer sends first, reading a greeting never
// panics, reads at most GreetingLen bytes, never quotes the peer, and what
// it accepts survives a round trip.
func FuzzReadGreeting(f *testing.F) {
	f.Add(NewGreeting(7, true).Bytes())
	f.Add(NewGreeting(0, false).Bytes())
	f.Add([]byte("SSH-2.0-OpenSSH_9.2p1 Debian\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		g, err := ReadGreeting(r)
		if read := len(b) - r.Len(); read > GreetingLen {
			t.Fatalf("read %d bytes", read)
		}
		if err != nil {
			if len(b) >= 8 && bytes.Contains([]byte(err.Error()), b[:8]) && !bytes.HasPrefix(b, []byte(magic)) {
				t.Fatalf("the error quotes the peer: %v", err)
			}
			return
		}
		if !bytes.Equal(g.Bytes(), b[:GreetingLen]) {
			t.Fatal("round trip changed the greeting")
		}
	})
}
