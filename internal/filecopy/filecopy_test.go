package filecopy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tree makes a small tree: a file with an odd mode and an old time, a
// subdirectory, and a symbolic link.
func tree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o750))
	must(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello\n"), 0o640))
	must(t, os.WriteFile(filepath.Join(dir, "sub", "b"), bytes.Repeat([]byte("x"), 3<<20), 0o600))
	must(t, os.Symlink("a.txt", filepath.Join(dir, "link")))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(t, os.Chtimes(filepath.Join(dir, "a.txt"), old, old))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func openRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	must(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// framed packs src/name into framed bytes.
func framed(t *testing.T, src, name string) []byte {
	var buf bytes.Buffer
	fw := NewWriter(&buf)
	must(t, Pack(fw, openRoot(t, src), name, nil))
	must(t, fw.Close())
	return buf.Bytes()
}

func unpackFramed(data []byte, root *os.Root, dest string) error {
	fr := NewReader(bytes.NewReader(data))
	return Unpack(fr, root, dest, true, fr.Drain, nil)
}

func TestRoundTrip(t *testing.T) {
	src := tree(t)
	data := framed(t, filepath.Dir(src), "src")
	// Both ends count the same entries and the same bytes of files.
	var packed, unpacked Tally
	var buf bytes.Buffer
	must(t, Pack(&buf, openRoot(t, filepath.Dir(src)), "src", &packed))
	must(t, Unpack(&buf, openRoot(t, t.TempDir()), "copy", true, nil, &unpacked))
	if packed != unpacked || packed.Entries < 3 || packed.Bytes == 0 {
		t.Fatalf("packed %+v, unpacked %+v", packed, unpacked)
	}
	for _, tc := range []struct {
		name, dest, want string // want: where the tree lands, under out
	}{
		{"to a new name", "copy", "copy"},
		{"into an existing directory", "existing", "existing/src"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			must(t, os.Mkdir(filepath.Join(out, "existing"), 0o755))
			must(t, unpackFramed(data, openRoot(t, out), tc.dest))
			got := filepath.Join(out, tc.want)
			for _, f := range []string{"a.txt", "sub/b"} {
				a, _ := os.Lstat(filepath.Join(src, f))
				b, err := os.Lstat(filepath.Join(got, f))
				if err != nil {
					t.Fatal(err)
				}
				if a.Mode() != b.Mode() || !a.ModTime().Equal(b.ModTime()) || a.Size() != b.Size() {
					t.Errorf("%s: mode %v time %v size %d, want %v %v %d", f, b.Mode(), b.ModTime(), b.Size(), a.Mode(), a.ModTime(), a.Size())
				}
			}
			if l, err := os.Readlink(filepath.Join(got, "link")); err != nil || l != "a.txt" {
				t.Errorf("link: %q %v", l, err)
			}
			if fi, err := os.Stat(filepath.Join(got, "sub")); err != nil || fi.Mode().Perm() != 0o750 {
				t.Errorf("sub: %v %v", fi, err)
			}
			leftovers(t, out)
		})
	}
}

// leftovers fails if a temporary file stayed anywhere under dir.
func leftovers(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
		if strings.HasPrefix(filepath.Base(p), ".circuit-cp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

func TestDamagedStreams(t *testing.T) {
	src := tree(t)
	data := framed(t, filepath.Dir(src), "src")
	corrupt := bytes.Clone(data)
	corrupt[len(corrupt)/2] ^= 0xff // inside sub/b's bytes
	var plain, failed bytes.Buffer
	must(t, Pack(&plain, openRoot(t, filepath.Dir(src)), "src", nil))
	fw := NewWriter(&failed)
	fw.Write(plain.Bytes()[:plain.Len()/2])
	fw.Fail(errors.New("disk on fire"))
	for _, tc := range []struct {
		name string
		data []byte
		want func(error) bool
	}{
		{"corrupted", corrupt, func(err error) bool { return errors.Is(err, ErrChecksum) }},
		{"cut short", data[:len(data)-20], func(err error) bool { return errors.Is(err, ErrCutShort) }},
		{"cut in a file", data[:len(data)/2], func(err error) bool { return errors.Is(err, ErrCutShort) }},
		{"sender failed", failed.Bytes(), func(err error) bool {
			var r *RemoteError
			return errors.As(err, &r) && r.Msg == "disk on fire"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			err := unpackFramed(tc.data, openRoot(t, out), "copy")
			if !tc.want(err) {
				t.Fatalf("got %v", err)
			}
			for _, f := range []string{"copy/a.txt", "copy/sub/b", "copy/link"} {
				if _, err := os.Lstat(filepath.Join(out, f)); err == nil {
					t.Errorf("%s is there after a failed copy", f)
				}
			}
			leftovers(t, out)
		})
	}
}

func TestConfined(t *testing.T) {
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600))
	top := t.TempDir()
	must(t, os.Symlink(outside, filepath.Join(top, "escape")))
	root := openRoot(t, top)
	// Reading through a link that leaves the root fails.
	if err := Pack(io.Discard, root, "escape/secret", nil); err == nil {
		t.Fatal("packed a file outside the root")
	}
	// So does writing.
	src := tree(t)
	data := framed(t, filepath.Dir(src), "src")
	if err := unpackFramed(data, root, "escape/copy"); err == nil {
		t.Fatal("wrote outside the root")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Fatalf("the outside directory changed: %v", entries)
	}
	// A path with .. stays inside: Rel cleans it from the root's top.
	if r, err := Rel("/../../etc/passwd"); err != nil || r != "etc/passwd" {
		t.Fatalf("Rel: %q %v", r, err)
	}
	for _, bad := range []string{"", "relative/path"} {
		if _, err := Rel(bad); err == nil {
			t.Errorf("Rel(%q) took it", bad)
		}
	}
	// A tar entry naming .. is refused.
	for _, n := range []string{"../x", "a/../../x", "/abs"} {
		if _, err := entryName(n); err == nil {
			t.Errorf("entryName(%q) took it", n)
		}
	}
}

// FuzzReader: no frame sequence makes the reader panic or return data
// after failing.
func FuzzReader(f *testing.F) {
	var ok bytes.Buffer
	fw := NewWriter(&ok)
	fw.Write([]byte("some payload"))
	fw.Close()
	f.Add(ok.Bytes())
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 'h', 'i'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		_, err := io.Copy(io.Discard, r)
		if err == nil {
			// A verified stream: writing its payload again gives the same bytes.
			return
		}
		if n, _ := r.Read(make([]byte, 8)); n != 0 {
			t.Fatalf("read %d bytes after %v", n, err)
		}
	})
}

// linkStream packs one symbolic link, named l, pointing at target.
func linkStream(t *testing.T, target string) []byte {
	t.Helper()
	src := t.TempDir()
	must(t, os.Symlink(target, filepath.Join(src, "l")))
	return framed(t, src, "l")
}

// files lists what is not a directory under dir (files, links), as paths
// relative to dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	must(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, rel)
		}
		return nil
	}))
	return got
}

// TestLinkTargets: under a root that is not "/", a symbolic link is
// written only if its target, joined lexically to the link's directory,
// stays inside the root. An absolute target is refused, and so is one
// that climbs out of the root even to come back in through the root's own
// name ("ROOT" in a target below): both depend on where the root is.
func TestLinkTargets(t *testing.T) {
	for _, tc := range []struct {
		target string
		dest   string // the directory the link lands in, inside the root
		ok     bool
	}{
		{"a.txt", ".", true},
		{"sub/../a.txt", ".", true},
		{"./x", ".", true},
		{"nowhere/at/all", ".", true}, // dangling, but inside
		{".", ".", true},
		{"../x", "d/e", true},
		{"../../x", "d/e", true},
		{"../..", "d/e", true}, // the root's top itself
		{"/etc/passwd", ".", false},
		{"/", ".", false},
		{"../x", ".", false},
		{"..", ".", false},
		{"sub/../../x", ".", false},
		{"../ROOT/x", ".", false}, // out and back in
		{"../../ROOT/x", "d", false},
		{"../ROOT/x", "d", true}, // ROOT/x: a directory named like the root, inside
		{"../../../x", "d/e", false},
		{"x/../../../../x", "d/e", false},
	} {
		t.Run(tc.target+" in "+tc.dest, func(t *testing.T) {
			out := t.TempDir()
			must(t, os.MkdirAll(filepath.Join(out, tc.dest), 0o755))
			target := strings.ReplaceAll(tc.target, "ROOT", filepath.Base(out))
			fr := NewReader(bytes.NewReader(linkStream(t, target)))
			err := Unpack(fr, openRoot(t, out), tc.dest, false, fr.Drain, nil)
			l := filepath.Join(out, tc.dest, "l")
			if tc.ok {
				must(t, err)
				if got, err := os.Readlink(l); err != nil || got != target {
					t.Errorf("link: %q %v, want %q", got, err, target)
				}
			} else {
				if !errors.Is(err, errLinkLeavesRoot) {
					t.Fatalf("got %v, want the link refused", err)
				}
				if want := fmt.Sprintf("link %q -> %q", "l", target); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
				if got := files(t, out); len(got) != 0 {
					t.Errorf("left after the refusal: %v", got)
				}
			}
			leftovers(t, out)
		})
	}
}

// TestLinkTargetsWholeFS: with the host's "/" as root (no -fs-root, and
// the client's side) every target is inside, and is written as it is.
func TestLinkTargetsWholeFS(t *testing.T) {
	for _, top := range []string{"/", "/."} {
		for _, target := range []string{"/etc/passwd", "../../../../../x", "a.txt"} {
			t.Run(top+" "+target, func(t *testing.T) {
				out := t.TempDir()
				dest, err := Rel(filepath.ToSlash(out))
				must(t, err)
				fr := NewReader(bytes.NewReader(linkStream(t, target)))
				must(t, Unpack(fr, openRoot(t, top), dest, false, fr.Drain, nil))
				if got, err := os.Readlink(filepath.Join(out, "l")); err != nil || got != target {
					t.Errorf("link: %q %v, want %q", got, err, target)
				}
			})
		}
	}
}

// TestBadLinkFailsWholeCopy: a link leaving the root among good files
// (at copy/sub/escape or existing/src/sub/escape, climbing four levels),
// met after some of them were written (to temporary names), fails the
// whole copy: the error names it, and no file, link or temporary file of
// the copy is left (directories made on the way stay, as in any failed
// copy).
func TestBadLinkFailsWholeCopy(t *testing.T) {
	src := tree(t) // a.txt, link, sub/b: written before sub/escape
	must(t, os.Symlink("../../../../etc", filepath.Join(src, "sub", "escape")))
	must(t, os.WriteFile(filepath.Join(src, "z.txt"), []byte("after\n"), 0o644))
	data := framed(t, filepath.Dir(src), "src")
	for _, dest := range []string{"copy", "existing"} { // to a new name, into a directory
		t.Run(dest, func(t *testing.T) {
			out := t.TempDir()
			must(t, os.Mkdir(filepath.Join(out, "existing"), 0o755))
			err := unpackFramed(data, openRoot(t, out), dest)
			if !errors.Is(err, errLinkLeavesRoot) {
				t.Fatalf("got %v, want the link refused", err)
			}
			if want := `link "src/sub/escape" -> "../../../../etc"`; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
			if got := files(t, out); len(got) != 0 {
				t.Errorf("left after the failed copy: %v", got)
			}
			leftovers(t, out)
		})
	}
}

// TestLinkThroughLinks: a target is judged lexically only where nothing on
// the way is a link, so a link is refused when its directory, or a name
// its target passes through, is a link: one already in the root, or one
// written earlier in the same copy. Each of these would lead out of the
// root as the kernel resolves it, though it reads as inside.
func TestLinkThroughLinks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing map[string]string // links already in the root
		sent     [][2]string       // links of the copy, in order: name, target
		ok       bool
	}{
		{"through a link of the same copy", nil, [][2]string{{"a/b/c", ".."}, {"a/b/l", "c/../../../x"}}, false},
		{"through a link in the root", map[string]string{"top/up": ".."}, [][2]string{{"l", "up/../x"}}, false},
		{"in a directory that is a link", map[string]string{"d": "."}, [][2]string{{"l", "../../x"}}, false},
		{"to a link, as its last name", nil, [][2]string{{"a/c", "x"}, {"a/l", "c"}}, true},
		{"through a plain directory", nil, [][2]string{{"a/b/l", "../../a/b/x"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			for name, target := range tc.existing {
				must(t, os.MkdirAll(filepath.Dir(filepath.Join(out, name)), 0o755))
				must(t, os.Symlink(target, filepath.Join(out, name)))
			}
			src := t.TempDir()
			for _, l := range tc.sent {
				p := filepath.Join(src, "top", l[0])
				must(t, os.MkdirAll(filepath.Dir(p), 0o755))
				must(t, os.Symlink(l[1], p))
			}
			fr := NewReader(bytes.NewReader(framed(t, src, "top")))
			dest := "."
			if tc.existing["d"] != "" {
				dest = "d" // the copy lands in the linked directory
			}
			err := Unpack(fr, openRoot(t, out), dest, false, fr.Drain, nil)
			if tc.ok {
				must(t, err)
			} else if !errors.Is(err, errLinkLeavesRoot) {
				t.Fatalf("got %v, want a link refused", err)
			}
			leftovers(t, out)
		})
	}
}
