package server

import (
	"net"
	"strings"
	"testing"
)

// TestUnkeyedWarning: the warning follows the bound address, not the
// advertised one, and names it.
func TestUnkeyedWarning(t *testing.T) {
	for _, tc := range []struct {
		keyed bool
		bound string
		want  string // "" for no warning
	}{
		{false, "127.0.0.1:11022", ""},
		{false, "127.0.0.5:11022", ""},
		{false, "[::1]:11022", ""},
		{true, "0.0.0.0:11022", ""},
		{false, "0.0.0.0:11022", "0.0.0.0:11022 (every address of this host)"},
		{false, "[::]:11022", "[::]:11022 (every address of this host)"},
		{false, "10.0.0.1:11022", "bound to 10.0.0.1:11022 with no cluster key"},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.bound)
		if err != nil {
			t.Fatal(err)
		}
		got := unkeyedWarning(tc.keyed, a)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("keyed %v, bound %s: %q, want %q", tc.keyed, tc.bound, got, tc.want)
		}
	}
}
