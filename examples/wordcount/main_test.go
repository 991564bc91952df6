package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

func TestMain(m *testing.M) { build.Main(m) }

// TestWordCount counts the words of this repository's documentation on a
// cluster of four servers and checks every printed count against a count
// made here.
func TestWordCount(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	want := Counts{}
	total := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range words(string(b)) {
			want[w]++
			total++
		}
	}
	bin := build.Program(t, ".")
	cl := testcluster.Start(t, 4, testcluster.Options{Local: true})
	r := cl.RunProgram(bin, append([]string{"-d", cl.Servers[0].URL, "-mappers", "5", "-reducers", "3", "-top", "25"}, files...)...)
	if r.Code != 0 {
		t.Fatalf("wordcount: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("wordcount:\n%s%s", r.Stderr, r.Stdout)
	lines := testcluster.Lines(r.Stdout)
	if head := fmt.Sprintf("%d words, %d distinct, counted on 4 servers", total, len(want)); lines[0] != head {
		t.Fatalf("first line %q, want %q", lines[0], head)
	}
	row := regexp.MustCompile(`^ *(\d+) (\S+)$`)
	for _, l := range lines[1:] {
		m := row.FindStringSubmatch(l)
		if m == nil || m[1] != fmt.Sprint(want[m[2]]) {
			t.Fatalf("line %q: want count %d", l, want[m[2]])
		}
	}
	if len(lines) != 26 {
		t.Fatalf("%d lines, want 26", len(lines))
	}
	if n := strings.Count(r.Stderr, "map "); n != 5 {
		t.Fatalf("%d map workers reported, want 5", n)
	}
	// Nothing is left: workers, channels and directories are gone.
	if r := cl.Run("ls", "/..."); len(testcluster.Lines(r.Stdout)) != 4 {
		t.Fatalf("left behind:\n%s", r.Stdout)
	}
}
