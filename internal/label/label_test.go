package label

import (
	"errors"
	"reflect"
	"testing"
)

func TestSelectorMatches(t *testing.T) {
	db := Set{"role": "db", "zone": "a"}
	web := Set{"role": "web", "zone": "b"}
	bare := Set{}
	for _, tc := range []struct {
		sel  string
		want [3]bool // db, web, bare
	}{
		{"", [3]bool{true, true, true}},
		{"role=db", [3]bool{true, false, false}},
		{"role==db", [3]bool{true, false, false}},
		{"role!=db", [3]bool{false, true, true}},
		{"zone in (a,b)", [3]bool{true, true, false}},
		{"zone in (b)", [3]bool{false, true, false}},
		{"zone notin (a)", [3]bool{false, true, true}},
		{"role=db,zone=a", [3]bool{true, false, false}},
		{"role=db,zone=b", [3]bool{false, false, false}},
		{" role = web , zone in ( a , b ) ", [3]bool{false, true, false}},
		{"role", [3]bool{true, true, false}},
		{"!role", [3]bool{false, false, true}},
		{"role,!zone", [3]bool{false, false, false}},
	} {
		sel, err := Parse(tc.sel)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.sel, err)
		}
		got := [3]bool{sel.Matches(db), sel.Matches(web), sel.Matches(bare)}
		if got != tc.want {
			t.Errorf("%q matches db, web, bare = %v, want %v", tc.sel, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{
		"role=", // empty values are allowed only as labels, but "role=" selects role set to ""
		"=db",
		"role=db,",
		"role=db zone=a",
		"zone in a,b",
		"zone in (a,b",
		"zone in ()",
		"role=d$b",
		"-role=db",
		"role=db-",
		"index (a)",
		"role~db",
	} {
		_, err := Parse(s)
		if s == "role=" {
			if err != nil {
				t.Errorf("Parse(%q): %v, want the empty value", s, err)
			}
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a *SyntaxError", s, err)
		}
	}
}

func TestParseSet(t *testing.T) {
	s, err := ParseSet("role=db,zone=a,empty=")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Set{"role": "db", "zone": "a", "empty": ""}); !reflect.DeepEqual(s, want) {
		t.Fatalf("got %v, want %v", s, want)
	}
	if s.String() != "empty=,role=db,zone=a" {
		t.Fatalf("String() = %q", s.String())
	}
	for _, bad := range []string{"role", "role=db,role=web", "ro le=db", "role=d b", "=x"} {
		if _, err := ParseSet(bad); err == nil {
			t.Errorf("ParseSet(%q) took it", bad)
		}
	}
}

// FuzzParse: whatever parses prints back to a selector that parses to the
// same thing, and nothing panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"role=db", "zone in (a,b),role!=web", "!x,y", "a notin (b)", "", "k==v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(sel.String())
		if err != nil {
			t.Fatalf("Parse(%q) printed %q, which does not parse: %v", s, sel.String(), err)
		}
		if !reflect.DeepEqual(sel, again) {
			t.Fatalf("Parse(%q) = %#v, printed %q, parsed back %#v", s, sel, sel.String(), again)
		}
	})
}
