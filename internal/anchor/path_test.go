package anchor

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/circuit-project/circuit/internal/ident"
)

const (
	sid = "X88550014d4c82e4d"
	id  = ident.ID(0x88550014d4c82e4d)
)

// validPath returns a valid path of exactly n bytes (n >= 20).
func validPath(n int) string {
	s := "/" + sid
	for len(s) < n {
		s += "/" + strings.Repeat("a", min(MaxElemLen, n-len(s)-1))
	}
	return s
}

func TestParseGood(t *testing.T) {
	long := validPath(MaxPathLen)
	tests := []struct {
		in   string
		want Path
		str  string
	}{
		{"/", Path{}, "/"},
		{"/...", Path{Recursive: true}, "/..."},
		{"/.../", Path{Recursive: true}, "/..."},
		{"/" + sid, Path{Server: id}, "/" + sid},
		{"/" + sid + "/", Path{Server: id}, "/" + sid},
		{"/" + sid + "/...", Path{Server: id, Recursive: true}, "/" + sid + "/..."},
		{"/" + sid + "/hi/charlie", Path{Server: id, Elems: []string{"hi", "charlie"}}, "/" + sid + "/hi/charlie"},
		{"/" + sid + "/a/b/...", Path{Server: id, Elems: []string{"a", "b"}, Recursive: true}, "/" + sid + "/a/b/..."},
		{"/" + sid + "/a/b/.../", Path{Server: id, Elems: []string{"a", "b"}, Recursive: true}, "/" + sid + "/a/b/..."},
		{"/X88550014D4C82E4D/a", Path{Server: id, Elems: []string{"a"}}, "/" + sid + "/a"},
		{"/Q88550014d4c82e4d/a", Path{Server: id, Elems: []string{"a"}}, "/" + sid + "/a"},
		{"/x88550014d4c82e4d/a", Path{Server: id, Elems: []string{"a"}}, "/" + sid + "/a"},
		{"/" + sid + "/..../.a/a..", Path{Server: id, Elems: []string{"....", ".a", "a.."}}, "/" + sid + "/..../.a/a.."},
		{"/" + sid + "/a b/ünï/日本", Path{Server: id, Elems: []string{"a b", "ünï", "日本"}}, "/" + sid + "/a b/ünï/日本"},
		{"/" + sid + "/" + strings.Repeat("z", MaxElemLen), Path{Server: id, Elems: []string{strings.Repeat("z", MaxElemLen)}}, "/" + sid + "/" + strings.Repeat("z", MaxElemLen)},
		{long, Path{Server: id, Elems: Split(long)[1:]}, long},
	}
	for _, tt := range tests {
		p, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%s): %v", quote(tt.in), err)
			continue
		}
		if !reflect.DeepEqual(p, tt.want) {
			t.Errorf("Parse(%s) = %#v, want %#v", quote(tt.in), p, tt.want)
		}
		if got := p.String(); got != tt.str {
			t.Errorf("Parse(%s).String() = %s, want %s", quote(tt.in), quote(got), quote(tt.str))
		}
		if q, err := Parse(p.String()); err != nil || !reflect.DeepEqual(q, p) {
			t.Errorf("Parse(%s) = %#v, %v; want %#v", quote(p.String()), q, err, p)
		}
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		in    string
		why   string // in the error message
		badID bool   // the error also wraps ident.ErrBadID
	}{
		{"", "empty", false},
		{"relative", `must start with "/"`, false},
		{sid + "/a", `must start with "/"`, false},
		{"//", "empty component", false},
		{"//" + sid, "empty component", false},
		{"/" + sid + "//a", "empty component", false},
		{"/" + sid + "/a//", "empty component", false},
		{"/" + sid + "/../a", `component ".." is not allowed`, false},
		{"/" + sid + "/./a", `component "." is not allowed`, false},
		{"/.", `component "." is not allowed`, false},
		{"/" + sid + "/a/.../b", `"..." is allowed only as the last component`, false},
		{"/.../...", `"..." is allowed only as the last component`, false},
		{"/.../" + sid, `"..." is allowed only as the last component`, false},
		{"/Xnothex/a", `server ID: malformed server ID "Xnothex"`, true},
		{"/X0000000000000000/a", `malformed server ID "X0000000000000000"`, true},
		{"/X123/a", `malformed server ID "X123"`, true},
		{"/hi/charlie", `malformed server ID "hi"`, true},
		{"/" + sid + "/a\x00b", "control character U+0000", false},
		{"/" + sid + "/a\nb", "control character U+000A", false},
		{"/" + sid + "/\x7f", "control character U+007F", false},
		{"/" + sid + "/a\u0085", "control character U+0085", false},
		{"/" + sid + "/\xffa", "not valid UTF-8", false},
		{"/" + sid + "/" + strings.Repeat("z", MaxElemLen+1), "256 bytes, limit 255", false},
		{validPath(MaxPathLen + 1), "(4097 bytes): longer than 4096 bytes", false},
		{validPath(MaxPathLen) + "/...", "longer than 4096 bytes", false},
	}
	for _, tt := range tests {
		p, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%s) = %#v, want an error", quote(tt.in), p)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, ErrBadPath) {
			t.Errorf("Parse(%s): error %q does not wrap ErrBadPath", quote(tt.in), msg)
		}
		if errors.Is(err, ident.ErrBadID) != tt.badID {
			t.Errorf("Parse(%s): error %q: wraps ident.ErrBadID = %v, want %v", quote(tt.in), msg, !tt.badID, tt.badID)
		}
		name := strconv.Quote(tt.in)
		if len(name) > 60 {
			name = name[:60]
		}
		if !strings.Contains(msg, name) || !strings.Contains(msg, tt.why) {
			t.Errorf("Parse(%s): error %q, want it to name the path and say %q", quote(tt.in), msg, tt.why)
		}
	}
}

func TestPathString(t *testing.T) {
	tests := []struct {
		p    Path
		want string
	}{
		{Path{}, "/"},
		{Path{Recursive: true}, "/..."},
		{Path{Server: 1}, "/X0000000000000001"},
		{Path{Server: id, Elems: []string{"a"}, Recursive: true}, "/" + sid + "/a/..."},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"/", nil},
		{"//", nil},
		{"/...", []string{"..."}},
		{"a/b", []string{"a", "b"}},
		{"/" + sid + "/a//b/", []string{sid, "a", "b"}},
		{"/" + sid + "/../.", []string{sid, "..", "."}},
	}
	for _, tt := range tests {
		if got := Split(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Split(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"/", "/...", "/" + sid + "/a/b/...", "/" + sid + "//a", "/Xnothex/a", "/" + sid + "/a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrBadPath", s, err)
			}
			return
		}
		str := p.String()
		if len(str) > len(s) {
			t.Fatalf("Parse(%q).String() = %q is longer than its input", s, str)
		}
		q, err := Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", s, str, err)
		}
		if q.String() != str || !reflect.DeepEqual(p, q) {
			t.Fatalf("Parse(%q) = %#v, but Parse(%q) = %#v", s, p, str, q)
		}
	})
}
