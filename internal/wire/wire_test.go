package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/security"
)

func key(t testing.TB, s string) *security.Key {
	t.Helper()
	k, err := security.New([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPreambleRoundTripAndCheck(t *testing.T) {
	k1, k2 := key(t, "first secret of the cluster"), key(t, "second secret, another one")
	target := ident.ID(0x0123456789abcdef)
	cases := []struct {
		name   string
		signer *security.Key
		server *security.Key
		want   Code
	}{
		{"plain", nil, nil, CodeOK},
		{"keyed", k1, k1, CodeOK},
		{"no key at client", nil, k1, CodeKeyRequired},
		{"wrong key", k2, k1, CodeBadKey},
		{"no key at server", k1, nil, CodeNoKeyHere},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPreamble(KindRPC, target, tc.signer)
			p.Hop = 1 // relays change the hop count; the MAC must still hold
			got, err := ReadPreamble(bytes.NewReader(p.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != KindRPC || got.Target != target || got.Hop != 1 || got.Keyed != (tc.signer != nil) {
				t.Fatalf("read back %+v", got)
			}
			r := got.Check(tc.server)
			if code := CodeOK; r != nil {
				code = r.Code
				if code != tc.want {
					t.Fatalf("code %d (%s), want %d", code, r.Msg, tc.want)
				}
			} else if tc.want != CodeOK {
				t.Fatalf("accepted, want code %d", tc.want)
			}
		})
	}
}

func TestTamperedPreambleRefused(t *testing.T) {
	k := key(t, "first secret of the cluster")
	p := NewPreamble(KindRPC, 42, k)
	b := p.Bytes()
	b[10] ^= 1 // the target
	got, err := ReadPreamble(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Check(k); r == nil || r.Code != CodeBadKey {
		t.Fatalf("a preamble with a changed target passed: %v", r)
	}
}

func TestBadPreambles(t *testing.T) {
	good := NewPreamble(KindGossip, 0, nil).Bytes()
	for name, b := range map[string][]byte{
		"short":     good[:10],
		"bad magic": append([]byte("HTTP"), good[4:]...),
		"bad kind":  append(append([]byte{}, good[:4]...), append([]byte{'Z'}, good[5:]...)...),
		"bad flags": append(append([]byte{}, good[:5]...), append([]byte{0x80}, good[6:]...)...),
		"empty":     nil,
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
	f.Add(NewPreamble(KindRPC, 7, nil).Bytes())
	f.Add(NewPreamble(KindStream, 0, key(f, "first secret of the cluster")).Bytes())
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	k := key(f, "first secret of the cluster")
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		p, err := ReadPreamble(r)
		if read := len(b) - r.Len(); read > PreambleLen {
			t.Fatalf("read %d bytes", read)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(p.Bytes(), b[:PreambleLen]) {
			t.Fatal("round trip changed the preamble")
		}
		p.Check(k)
		p.Check(nil)
	})
}
