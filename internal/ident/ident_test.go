package ident

import (
	"errors"
	"testing"
)

func TestParseURL(t *testing.T) {
	good := []struct {
		in   string
		want URL
	}{
		{"circuit://10.0.0.1:11022/78517/X56e7a2a0d47a7b5d", URL{"10.0.0.1:11022", 78517, 0x56e7a2a0d47a7b5d}},
		{"circuit://10.0.0.1:11022/78517/Q56e7a2a0d47a7b5d", URL{"10.0.0.1:11022", 78517, 0x56e7a2a0d47a7b5d}},
		{"  circuit://[::1]:5/1/X0000000000000001\n", URL{"[::1]:5", 1, 1}},
		{"127.0.0.1:11022", URL{Addr: "127.0.0.1:11022"}},
		{"localhost:1", URL{Addr: "localhost:1"}},
	}
	for _, g := range good {
		got, err := ParseURL(g.in)
		if err != nil || got != g.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", g.in, got, err, g.want)
		}
	}
	bad := []string{
		"", "127.0.0.1", ":11022", "127.0.0.1:0", "127.0.0.1:99999", "http://1.2.3.4:5/1/X56e7a2a0d47a7b5d",
		"circuit://1.2.3.4:5/X56e7a2a0d47a7b5d", "circuit://1.2.3.4:5/abc/X56e7a2a0d47a7b5d",
		"circuit://1.2.3.4:5/1/X56e7", "circuit://1.2.3.4:5/1/X0000000000000000", "circuit://1.2.3.4/1/X56e7a2a0d47a7b5d",
		"circuit://u@1.2.3.4:5/1/X56e7a2a0d47a7b5d", "circuit://1.2.3.4:5/1/X56e7a2a0d47a7b5d?x=1",
	}
	for _, b := range bad {
		if _, err := ParseURL(b); !errors.Is(err, ErrBadURL) {
			t.Errorf("ParseURL(%q) = %v, want ErrBadURL", b, err)
		}
	}
}

func TestIDRoundTrip(t *testing.T) {
	for range 100 {
		id := NewID()
		got, err := ParseID(id.String())
		if err != nil || got != id {
			t.Fatalf("%s: %v %v", id, got, err)
		}
	}
	u := URL{Addr: "127.0.0.1:1", PID: 9, ID: 0xabc}
	if got, err := ParseURL(u.String()); err != nil || got != u {
		t.Fatalf("URL round trip: %+v %v", got, err)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"circuit://10.0.0.1:11022/78517/X56e7a2a0d47a7b5d", "127.0.0.1:1", "circuit://[::1]:5/1/Q0000000000000001", "circuit://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			return
		}
		again, err := ParseURL(u.String())
		if err != nil || again != u {
			t.Fatalf("%q parsed to %+v, which formats to %q and parses to %+v, %v", s, u, u.String(), again, err)
		}
	})
}
