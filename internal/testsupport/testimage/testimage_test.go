package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"regexp"
	"testing"
	"time"
)

// TestRootfs reads back the tarball of an image's file system: the
// directories, the files with their modes and contents, and a link to
// busybox for every applet.
func TestRootfs(t *testing.T) {
	files := []File{{Path: "bin/busybox", Data: []byte("bb"), Mode: 0o755}, {Path: "etc/x.conf", Data: []byte("x=1\n"), Mode: 0o644}}
	b, err := rootfs(files)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		typ  byte
		mode int64
		data string
		link string
	}
	got := map[string]entry{}
	tr := tar.NewReader(bytes.NewReader(b))
	for range 1000 {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := got[h.Name]; dup {
			t.Errorf("%s twice in the tarball", h.Name)
		}
		got[h.Name] = entry{h.Typeflag, h.Mode, string(data), h.Linkname}
	}
	want := map[string]entry{
		"bin/": {tar.TypeDir, 0o755, "", ""}, "dev/": {tar.TypeDir, 0o755, "", ""}, "etc/": {tar.TypeDir, 0o755, "", ""},
		"proc/": {tar.TypeDir, 0o755, "", ""}, "sys/": {tar.TypeDir, 0o755, "", ""}, "tmp/": {tar.TypeDir, 0o1777, "", ""},
		"var/":        {tar.TypeDir, 0o755, "", ""},
		"bin/busybox": {tar.TypeReg, 0o755, "bb", ""},
		"etc/x.conf":  {tar.TypeReg, 0o644, "x=1\n", ""},
	}
	for _, a := range Applets {
		want["bin/"+a] = entry{tar.TypeSymlink, 0o777, "", "busybox"}
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s: %+v (present %v), want %+v", name, g, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d entries, want %d", len(got), len(want))
	}
}

// TestEnsure makes a small image twice: the second call finds the first's,
// by the same reference; other content makes another.
func TestEnsure(t *testing.T) {
	cli := Engine(t)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	extra := File{Path: "etc/testimage", Data: []byte("one\n"), Mode: 0o644}
	ref, err := Ensure(ctx, cli, "circuit-testimage-test", extra)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^circuit-testimage-test:[0-9a-f]{16}$`).MatchString(ref) {
		t.Errorf("reference %q, want NAME:16 hex digits", ref)
	}
	again, err := Ensure(ctx, cli, "circuit-testimage-test", extra)
	if err != nil || again != ref {
		t.Errorf("Ensure again = %q, %v; want %q", again, err, ref)
	}
	if _, err := cli.ImageInspect(ctx, ref); err != nil {
		t.Errorf("inspecting %s: %v", ref, err)
	}
	extra.Data = []byte("two\n")
	other, err := Ensure(ctx, cli, "circuit-testimage-test", extra)
	if err != nil || other == ref {
		t.Errorf("Ensure with other content = %q, %v; want a reference other than %q", other, err, ref)
	}
}
