package anchorfs

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // canonical form; "" when an error is expected
		err  string
	}{
		{in: "/firehose/clients", want: "/firehose/clients"},
		{in: "/firehose/clients/", want: "/firehose/clients"},
		{in: "/firehose/clients/...", want: "/firehose/clients/..."},
		{in: "/firehose/clients/spam/R6aca01d945c3b861", want: "/firehose/clients/spam/R6aca01d945c3b861"},
		{in: "/", want: "/"},
		{in: "/...", want: "/..."},
		{in: "/xmas/tree", err: "reserved for server IDs"},
		{in: "/Q88550014d4c82e4d", err: "reserved for server IDs"},
		{in: "/Queue/a", want: "/Queue/a"},
		{in: "", err: "empty"},
		{in: "firehose", err: `must start with "/"`},
		{in: "/a//b", err: "empty component"},
		{in: "/a/../b", err: `".." is not allowed`},
		{in: "/a/.../b", err: "only as the last"},
		{in: "/R6aca01d945c3b861", err: "must be inside a directory"},
		{in: "/a/R6aca01d945c3b861/b", err: "is a worker ID"},
		{in: "/X88550014d4c82e4d/a", err: "reserved for server IDs"},
		{in: "/x12/a", err: "reserved for server IDs"},
		{in: "/a/b\x00c", err: "control character"},
		{in: "/" + strings.Repeat("a", 300), err: "255"},
		{in: "/" + strings.Repeat("a/", 3000), err: "longer than"},
	} {
		q, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %v, %v; want an error containing %q", tc.in, q, err, tc.err)
			}
			continue
		}
		if err != nil || q.String() != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q", tc.in, q.String(), err, tc.want)
		}
	}
}

func TestParseDir(t *testing.T) {
	for in, ok := range map[string]bool{
		"/firehose/clients/spam": true, "/a": true,
		"/": false, "/a/...": false, "/a/R6aca01d945c3b861": false, "/X0000000000000001": false, "a/b": false,
	} {
		_, err := ParseDir(in)
		if (err == nil) != ok {
			t.Errorf("ParseDir(%q): %v, want ok=%v", in, err, ok)
		}
	}
}

func TestInFS(t *testing.T) {
	for in, want := range map[string]bool{
		"/firehose": true, "/firehose/...": true, "/": false, "/...": false,
		"/X88550014d4c82e4d": false, "/X88550014d4c82e4d/a": false, "/X12": false, "/Xmas": false, "/Queue": true,
	} {
		if got := InFS(in); got != want {
			t.Errorf("InFS(%q) = %v, want %v", in, got, want)
		}
	}
}

// seedFiles is the anchor file system of seed 003's example.
func seedFiles(t *testing.T) []File {
	var files []File
	for _, p := range []string{
		"/firehose/clients/R486496d5c0419798",
		"/firehose/clients/dev/R486496d5c0419798",
		"/firehose/clients/search/R6aca01d945c3b861",
		"/firehose/clients/spam/R6aca01d945c3b861",
		"/firehose/clients/spam/R486496d5c0419798",
		"/elsewhere/R486496d5c0419798",
	} {
		f, err := ParseFile(p, "/X0000000000000001/"+p[strings.LastIndexByte(p, '/')+1:])
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f, f) // reported twice: the view dedups
	}
	return files
}

func TestViewSeed003(t *testing.T) {
	files := seedFiles(t)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"/firehose/clients", []string{
			"/firehose/clients",
			"/firehose/clients/R486496d5c0419798",
			"/firehose/clients/dev",
			"/firehose/clients/search",
			"/firehose/clients/spam",
		}},
		{"/firehose/clients/...", []string{
			"/firehose/clients",
			"/firehose/clients/R486496d5c0419798",
			"/firehose/clients/dev",
			"/firehose/clients/dev/R486496d5c0419798",
			"/firehose/clients/search",
			"/firehose/clients/search/R6aca01d945c3b861",
			"/firehose/clients/spam",
			"/firehose/clients/spam/R486496d5c0419798",
			"/firehose/clients/spam/R6aca01d945c3b861",
		}},
		{"/firehose", []string{"/firehose", "/firehose/clients"}},
		{"/firehose/clients/spam/R6aca01d945c3b861", []string{"/firehose/clients/spam/R6aca01d945c3b861"}},
		{"/", []string{"/elsewhere", "/firehose"}},
	} {
		q, err := Parse(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := View(q, files)
		if err != nil {
			t.Fatalf("View(%s): %v", tc.query, err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Path)
			if e.Dir == IsWorkerID(e.Path[strings.LastIndexByte(e.Path, '/')+1:]) {
				t.Errorf("View(%s): %s has Dir=%v", tc.query, e.Path, e.Dir)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("View(%s) =\n%s\nwant\n%s", tc.query, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
	for _, missing := range []string{"/firehose/client", "/firehose/clients/spam/R0000000000000001", "/nothing/..."} {
		q, _ := Parse(missing)
		if _, err := View(q, files); !errors.Is(err, ErrNotFound) {
			t.Errorf("View(%s) = %v, want ErrNotFound", missing, err)
		}
	}
}

func TestTable(t *testing.T) {
	var tab Table
	a, b := NewWorkerID(), NewWorkerID()
	spam, _ := ParseDir("/firehose/clients/spam")
	dev, _ := ParseDir("/firehose/clients/dev")
	if err := tab.Add(a, "/X0000000000000001/"+a, [][]string{spam, dev, spam}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Add(b, "/X0000000000000001/"+b, [][]string{spam}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Add(a, "/X0000000000000001/"+a, nil); err == nil {
		t.Error("a worker listed twice")
	}
	if err := tab.Add("worker", "/X0000000000000001/w", nil); err == nil {
		t.Error("a bad worker ID was listed")
	}
	count := func(path string, withBelow bool) int {
		q, err := Parse(path)
		if err != nil {
			t.Fatal(err)
		}
		return len(tab.Files(q, withBelow))
	}
	for _, tc := range []struct {
		path      string
		withBelow bool
		want      int
	}{
		{"/firehose/clients/spam", false, 2},
		{"/firehose/clients", false, 0},
		{"/firehose/clients", true, 3},
		{"/firehose/clients/...", false, 3},
		{"/firehose/clients/spam/" + a, false, 1},
		{"/firehose/clients/" + a + "/...", false, 2},
	} {
		if got := count(tc.path, tc.withBelow); got != tc.want {
			t.Errorf("Files(%s, %v) = %d files, want %d", tc.path, tc.withBelow, got, tc.want)
		}
	}
	tab.Remove(a)
	if got := count("/...", false); got != 1 || tab.Len() != 1 {
		t.Errorf("after Remove: %d files, %d workers; want 1, 1", got, tab.Len())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"/", "/...", "/a/b/...", "/a/R6aca01d945c3b861", "/X1/a", "//", "/a/../b", "/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrBadPath", s, err)
			}
			return
		}
		again, err := Parse(q.String())
		if err != nil || again.String() != q.String() {
			t.Fatalf("Parse(%q) = %q, which parses as %q, %v", s, q.String(), again.String(), err)
		}
	})
}
