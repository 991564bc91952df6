package op

import "testing"

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Role
		ok   bool
	}{
		{"read", Read, true}, {"operate", Operate, true}, {"admin", Admin, true},
		{"none", None, false}, {"", None, false}, {"Admin", None, false}, {"root", None, false},
	} {
		got, err := ParseRole(tc.name)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseRole(%q) = %v, %v", tc.name, got, err)
		}
		if tc.ok && got.String() != tc.name {
			t.Errorf("%v prints as %q", got, got.String())
		}
	}
	if !(None < Read && Read < Operate && Operate < Admin) {
		t.Fatal("the roles are not ordered")
	}
}

// TestEveryCommandNeedsOperate: nothing that starts a command is allowed
// to a role below operate, and admin operations are few.
func TestEveryCommandNeedsOperate(t *testing.T) {
	for _, o := range All() {
		if o.Exec && o.Role < Operate {
			t.Errorf("%s starts a command but needs only %v", o.Name, o.Role)
		}
		if o.What == "" {
			t.Errorf("%s says nothing of what it is", o.Name)
		}
	}
}
