package testcluster

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/testsupport/build"
)

func TestMain(m *testing.M) { build.Main(m) }

// TestStart starts two server processes with a key and checks that each
// lists both, to the CLI and to the client library, and that a CLI call
// without the key is refused.
func TestStart(t *testing.T) {
	c := Start(t, 2, Options{Key: true, Local: true})
	want := []string{"/" + c.Servers[0].ID, "/" + c.Servers[1].ID}
	slices.Sort(want)
	for _, p := range c.Servers {
		if r := c.RunVia(p, "", "ls", "/"); r.Code != 0 || !slices.Equal(Lines(r.Stdout), want) {
			t.Errorf("ls / at %s: %+v, want %v", p.ID, r, want)
		}
	}
	ms, err := c.Client(c.Servers[1]).Members(t.Context())
	if err != nil || len(ms) != 2 {
		t.Errorf("the client's members: %v, %v", ms, err)
	}
	r := c.RunEnv([]string{"CIRCUIT_HMAC="}, "", "ls", "-d", c.Servers[0].URL, "/")
	if r.Code == 0 || !strings.Contains(r.Stderr, "key") {
		t.Errorf("ls without the key: %+v, want a refusal naming the key", r)
	}
}

// TestStartInProcess starts two servers in this process and checks that
// each lists both.
func TestStartInProcess(t *testing.T) {
	servers := StartInProcess(t, 2, nil)
	want := []ident.ID{servers[0].ID(), servers[1].ID()}
	slices.Sort(want)
	for _, s := range servers {
		var got []ident.ID
		for _, m := range s.Members() {
			got = append(got, m.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s lists %v, want %v", s.ID(), got, want)
		}
	}
}

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\n\n", nil},
		{"a", []string{"a"}},
		{"a\nb\n", []string{"a", "b"}},
		{"a\n\nb", []string{"a", "b"}},
		{" \n", []string{" "}},
	} {
		if got := Lines(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Lines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Errorf("%d bytes after 800 writes of one", n)
	}
}
