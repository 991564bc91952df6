package filecopy

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Rel turns a host path into a name inside root: absolute paths are taken
// from the root's top, so "/srv/a" is "srv/a". The empty path and "/" are
// the root itself, ".".
func Rel(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	c := path.Clean(p)
	if c == "/" {
		return ".", nil
	}
	return strings.TrimPrefix(c, "/"), nil
}

// Pack writes name (a file, a symbolic link or a directory tree, in root)
// as a tar stream to w. Entries are named after name's last element:
// packing "srv/data" gives "data", "data/a", ...
// Tally counts what a copy moved: its entries (files, directories,
// links) and the bytes of its files.
type Tally struct {
	Entries, Bytes int64
}

func (t *Tally) add(hdr *tar.Header) {
	if t == nil {
		return
	}
	t.Entries++
	if hdr.Typeflag == tar.TypeReg {
		t.Bytes += hdr.Size
	}
}

func Pack(w io.Writer, root *os.Root, name string, t *Tally) error {
	tw := tar.NewWriter(w)
	base := path.Base(name)
	if name == "." {
		base = "."
	}
	if err := packOne(tw, root, name, base, t); err != nil {
		return err
	}
	return tw.Close()
}

func packOne(tw *tar.Writer, root *os.Root, name, entry string, t *Tally) error {
	fi, err := root.Lstat(name)
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = root.Readlink(name); err != nil {
			return err
		}
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() && link == "" {
		return fmt.Errorf("%s: cannot copy a %s", "/"+name, fi.Mode().Type())
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = entry
	hdr.Format = tar.FormatPAX // times to the nanosecond
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	t.add(hdr)
	switch {
	case fi.Mode().IsRegular():
		f, err := root.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := Copy(tw, f); err != nil {
			return fmt.Errorf("%s: %w", "/"+name, err)
		}
	case fi.IsDir():
		d, err := root.Open(name)
		if err != nil {
			return err
		}
		entries, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			return err
		}
		slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		for _, e := range entries {
			if err := packOne(tw, root, path.Join(name, e.Name()), path.Join(entry, e.Name()), t); err != nil {
				return err
			}
		}
	}
	return nil
}

// Unpack reads a tar stream from r and writes it at dest in root, as
// `docker cp` does: into dest when dest is an existing directory, or, when
// rename is set and dest is not an existing directory, at dest itself (the
// stream's top entry renamed). Without rename dest must be a directory.
// Files go to temporary names until done reports no error (done reads the
// rest of a framed stream, so that its checksum is checked); only then are
// they renamed into place. On any error nothing is left under a final
// name, though directories made on the way stay.
func Unpack(r io.Reader, root *os.Root, dest string, rename bool, done func() error, t *Tally) (err error) {
	into := true
	if fi, serr := root.Stat(dest); serr != nil || !fi.IsDir() {
		if !rename {
			if serr != nil {
				return fmt.Errorf("destination: %w", serr)
			}
			return fmt.Errorf("destination %s is not a directory", "/"+dest)
		}
		into = false
	}
	u := &unpacker{root: root, whole: wholeFS(root), links: map[string]bool{}}
	defer func() {
		if err != nil {
			u.discard()
		}
	}()
	tr := tar.NewReader(r)
	top := ""
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the tar stream: %w", err)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		first, _, _ := strings.Cut(name, "/")
		if top == "" {
			top = first
		}
		target := path.Join(dest, name)
		if !into {
			if first != top {
				return fmt.Errorf("the stream holds %q beside %q: copying several entries needs an existing directory as destination", first, top)
			}
			target = path.Join(dest, strings.TrimPrefix(strings.TrimPrefix(name, top), "/"))
		}
		if err := u.entry(hdr, tr, target); err != nil {
			return err
		}
		t.add(hdr)
	}
	if done != nil {
		if err := done(); err != nil {
			return err
		}
	}
	return u.commit()
}

// entryName checks a tar entry's name: relative, and no "..".
func entryName(n string) (string, error) {
	c := path.Clean(strings.TrimPrefix(n, "./"))
	if c == "." || c == "" {
		return ".", nil
	}
	if path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("tar entry %q leaves its directory", n)
	}
	return c, nil
}

// errLinkLeavesRoot is the cause of a refused symbolic link.
var errLinkLeavesRoot = errors.New("its target leaves the root")

// wholeFS reports whether root is the host's own "/" (a server without
// -fs-root, or the client's side of a copy). It compares the directories
// themselves, not root.Name(): a name like "/srv/../" may be cleaned to "/"
// while it is not "/" (when /srv is a link), and the error of either Stat
// counts as "not the whole file system", the side that refuses more.
func wholeFS(root *os.Root) bool {
	in, err := root.Stat(".")
	if err != nil {
		return false
	}
	top, err := os.Stat("/")
	if err != nil {
		return false
	}
	return os.SameFile(in, top)
}

// leavesRoot reports whether a symbolic link in dir (a name in a root that
// is not the host's "/") pointing at linkname could lead out of the root,
// for whatever software on the host follows it: os.Root never follows
// such a link out, but other programs do. The rule:
//
//   - an absolute target is refused: it names the host's own file system,
//     outside the root, even when it happens to spell a path under the
//     root's directory (that depends on where the root is mounted);
//   - a relative target is joined to dir and cleaned, lexically, and is
//     refused if it climbs above the root's top, even to come back in
//     ("../<root's own name>/x"): that too depends on the root's name;
//   - the lexical reading holds only if nothing on the way is itself a
//     link (the kernel reads "name/.." as the parent of where name leads):
//     so the link is refused when a directory of dir, or a name its target
//     passes through before its last, is a symbolic link, already in the
//     root or written earlier in this copy (isLink). A last name that is a
//     link is fine: that link's own target was judged when it was written.
//
// Writing is safe whatever links are there, as every name this package
// writes resolves in os.Root, which follows no link out of the root, and
// within one copy no entry is written through a link of the same copy
// (links wait under temporary names until the commit).
func leavesRoot(dir, linkname string, isLink func(name string) bool) bool {
	if path.IsAbs(linkname) {
		return true
	}
	c := path.Join(dir, linkname)
	if c == ".." || strings.HasPrefix(c, "../") {
		return true
	}
	cur := "."
	if dir != "." {
		for _, name := range strings.Split(dir, "/") {
			if cur = path.Join(cur, name); isLink(cur) {
				return true
			}
		}
	}
	parts := strings.Split(linkname, "/")
	for i, name := range parts {
		switch name {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur) // never above the top: checked lexically
			continue
		}
		cur = path.Join(cur, name)
		if i < len(parts)-1 && isLink(cur) {
			return true
		}
	}
	return false
}

// isLink tells whether name is a symbolic link in the root, or one this
// copy has written (under a temporary name until the commit).
func (u *unpacker) isLink(name string) bool {
	if u.links[name] {
		return true
	}
	fi, err := u.root.Lstat(name)
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}

type pending struct {
	tmp, final string
	hdr        *tar.Header
}

type unpacker struct {
	root  *os.Root
	whole bool            // root is the host's "/": every link target is inside
	links map[string]bool // the final names of the links written so far
	files []pending       // written, to be renamed
	dirs  []pending       // made, whose mode and times are set at the end
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader, target string) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.root.MkdirAll(target, 0o700); err != nil {
			return err
		}
		u.dirs = append(u.dirs, pending{final: target, hdr: hdr})
		return nil
	case tar.TypeReg, tar.TypeSymlink:
	default:
		return fmt.Errorf("tar entry %q: cannot copy type %q", hdr.Name, hdr.Typeflag)
	}
	dir := path.Dir(target)
	if hdr.Typeflag == tar.TypeSymlink && !u.whole && leavesRoot(dir, hdr.Linkname, u.isLink) {
		return fmt.Errorf("link %q -> %q: %w", hdr.Name, hdr.Linkname, errLinkLeavesRoot)
	}
	if err := u.root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := path.Join(dir, ".circuit-cp-"+hex.EncodeToString(rnd[:])+"-"+path.Base(target))
	if hdr.Typeflag == tar.TypeSymlink {
		if err := u.root.Symlink(hdr.Linkname, tmp); err != nil {
			return err
		}
		u.links[target] = true
		u.files = append(u.files, pending{tmp: tmp, final: target, hdr: hdr})
		return nil
	}
	f, err := u.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	u.files = append(u.files, pending{tmp: tmp, final: target, hdr: hdr})
	if _, err := Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", "/"+target, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := u.root.Chmod(tmp, fs.FileMode(hdr.Mode)&fs.ModePerm); err != nil {
		return err
	}
	return u.root.Chtimes(tmp, hdr.ModTime, hdr.ModTime)
}

// commit renames every file into place and sets the directories' modes
// and times, deepest first (a rename inside changes a directory's time).
func (u *unpacker) commit() error {
	for i, p := range u.files {
		if err := u.root.Rename(p.tmp, p.final); err != nil {
			u.files = u.files[i:]
			return err
		}
	}
	u.files = nil
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		if err := u.root.Chmod(d.final, fs.FileMode(d.hdr.Mode)&fs.ModePerm); err != nil {
			return err
		}
		if err := u.root.Chtimes(d.final, d.hdr.ModTime, d.hdr.ModTime); err != nil {
			return err
		}
	}
	return nil
}

// discard removes the temporary files not renamed.
func (u *unpacker) discard() {
	for _, p := range u.files {
		u.root.Remove(p.tmp)
	}
	u.files = nil
}
