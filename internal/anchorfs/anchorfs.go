package anchorfs

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/ident"
)

var (
	// ErrBadPath is wrapped by every error about a malformed path.
	ErrBadPath = errors.New("bad anchor file system path")
	// ErrNotFound is wrapped when a listed directory or file does not
	// exist: no worker is registered in it or below it.
	ErrNotFound = errors.New("no such anchor directory or file")
)

// MaxDirs is how many directories one worker may be registered in.
const MaxDirs = 64

// IsWorkerID reports whether s is a worker ID: R and 16 lower-case hex
// digits.
func IsWorkerID(s string) bool {
	if len(s) != 17 || s[0] != 'R' {
		return false
	}
	for _, r := range s[1:] {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// NewWorkerID returns a random worker ID.
func NewWorkerID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("anchorfs: reading random bytes: %v", err))
	}
	return fmt.Sprintf("R%016x", binary.BigEndian.Uint64(b[:]))
}

// looksLikeServer reports whether a first component is reserved for the
// servers' anchors: any name starting with X (or x), so that a mistyped
// server ID is an error rather than an empty directory, and anything else
// that parses as a server ID.
func looksLikeServer(c string) bool {
	if c != "" && (c[0] == 'X' || c[0] == 'x') {
		return true
	}
	_, err := ident.ParseID(c)
	return err == nil
}

// InFS reports whether the path s names the anchor file system rather than
// a server's anchors: its first component does not look like a server ID.
// The root "/" and "/..." are in both.
func InFS(s string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(s, "/"), "/")
	return first != "" && first != "..." && !looksLikeServer(first)
}

// Query is a parsed path of the anchor file system, as ls and kill take it.
type Query struct {
	Dir       []string // the directory's components; nil for the root
	File      string   // a worker ID when the path names one file
	Recursive bool     // the path ended in "/..."
}

// Parse parses a path of the anchor file system: a directory, a directory
// and a worker ID (one file), or either followed by "/...".
func Parse(s string) (Query, error) {
	p, err := anchorPath(s)
	if err != nil {
		return Query{}, err
	}
	var q Query
	elems := anchor.Split(p)
	if n := len(elems); n > 0 && elems[n-1] == "..." {
		q.Recursive, elems = true, elems[:n-1]
	}
	if n := len(elems); n > 0 && IsWorkerID(elems[n-1]) {
		q.File, elems = elems[n-1], elems[:n-1]
		if len(elems) == 0 {
			return Query{}, badPath(s, "a worker ID names a file, which must be inside a directory")
		}
	}
	if err := checkDir(s, elems); err != nil {
		return Query{}, err
	}
	if len(elems) > 0 {
		q.Dir = elems
	}
	return q, nil
}

// ParseDir parses a directory a worker is to be registered in.
func ParseDir(s string) ([]string, error) {
	p, err := anchorPath(s)
	if err != nil {
		return nil, err
	}
	elems := anchor.Split(p)
	switch {
	case len(elems) == 0:
		return nil, badPath(s, "workers are registered in directories below /, not in / itself")
	case elems[len(elems)-1] == "...":
		return nil, badPath(s, `"..." selects what is below a directory; it is not a directory`)
	}
	if err := checkDir(s, elems); err != nil {
		return nil, err
	}
	return elems, nil
}

// anchorPath checks what every path must be, reusing the namespace's rules
// for components: absolute, no empty, "." or ".." components, no control
// characters, bounded lengths.
func anchorPath(s string) (string, error) {
	switch {
	case s == "":
		return "", badPath(s, "empty")
	case len(s) > anchor.MaxPathLen:
		return "", badPath(s, "longer than %d bytes", anchor.MaxPathLen)
	case s[0] != '/':
		return "", badPath(s, `must start with "/"`)
	case strings.Contains(s, "//"):
		return "", badPath(s, "empty component")
	}
	return s, nil
}

func checkDir(s string, elems []string) error {
	for i, c := range elems {
		if err := anchor.CheckElem(c); err != nil {
			return badPath(s, "%v", err)
		}
		if IsWorkerID(c) {
			return badPath(s, "component %q is a worker ID, which names a file, not a directory", c)
		}
		if i == 0 && looksLikeServer(c) {
			return badPath(s, "first component %q is reserved for server IDs (names starting with X); directories of the anchor file system must not look like one", c)
		}
	}
	return nil
}

func badPath(s, format string, args ...any) error {
	return fmt.Errorf("%w %q: %s", ErrBadPath, s, fmt.Sprintf(format, args...))
}

// Join formats directory components as a path: "/" for none.
func Join(elems []string) string { return "/" + strings.Join(elems, "/") }

// String formats the query as the path it was parsed from, canonically.
func (q Query) String() string {
	elems := slices.Clone(q.Dir)
	if q.File != "" {
		elems = append(elems, q.File)
	}
	if q.Recursive {
		elems = append(elems, "...")
	}
	return Join(elems)
}

// File is one anchor file: a worker listed in a directory.
type File struct {
	Dir    []string // the directory
	Worker string   // the worker ID, the file's name
	Anchor string   // the worker's process element, /Xid/R...
}

// Path is the file's path: its directory and its worker ID.
func (f File) Path() string { return Join(append(slices.Clone(f.Dir), f.Worker)) }

// ParseFile parses a file's path as a server reports it.
func ParseFile(path, anchorPath string) (File, error) {
	q, err := Parse(path)
	if err != nil {
		return File{}, err
	}
	if q.File == "" || q.Recursive {
		return File{}, badPath(path, "not a file")
	}
	return File{Dir: q.Dir, Worker: q.File, Anchor: anchorPath}, nil
}

// below reports whether dir is at or below top.
func below(dir, top []string) bool {
	return len(dir) >= len(top) && slices.Equal(dir[:len(top)], top)
}

// Match reports whether the query selects the file: a file in the
// directory (or, recursive, anywhere below it), restricted to one worker
// when the query names a file.
func (q Query) Match(f File) bool {
	if q.File != "" && f.Worker != q.File {
		return false
	}
	if q.Recursive {
		return below(f.Dir, q.Dir)
	}
	return slices.Equal(f.Dir, q.Dir)
}

// Entry is one line of a listing: a directory or a file.
type Entry struct {
	Path   string
	Dir    bool   // a directory, else a file
	Anchor string // for a file, the worker's process element
}

// View merges the files that servers reported (every file at or below the
// query's directory) into what ls shows, sorted by path and without
// duplicates: the directory itself, then the files in it and its
// subdirectories; with Recursive, everything below, at every depth. For a
// query naming a file, just that file. It fails with ErrNotFound when
// nothing matches, since an empty directory does not exist; an empty root
// is not an error.
func View(q Query, files []File) ([]Entry, error) {
	seen := map[string]Entry{}
	add := func(e Entry) { seen[e.Path] = e }
	for _, f := range files {
		if !below(f.Dir, q.Dir) {
			continue
		}
		if q.File != "" {
			if q.Match(f) {
				add(Entry{Path: f.Path(), Anchor: f.Anchor})
			}
			continue
		}
		if len(q.Dir) > 0 {
			add(Entry{Path: Join(q.Dir), Dir: true})
		}
		rest := f.Dir[len(q.Dir):]
		switch {
		case q.Recursive:
			for i := 1; i <= len(rest); i++ {
				add(Entry{Path: Join(f.Dir[:len(q.Dir)+i]), Dir: true})
			}
			add(Entry{Path: f.Path(), Anchor: f.Anchor})
		case len(rest) == 0:
			add(Entry{Path: f.Path(), Anchor: f.Anchor})
		default:
			add(Entry{Path: Join(f.Dir[:len(q.Dir)+1]), Dir: true})
		}
	}
	if len(seen) == 0 && (len(q.Dir) > 0 || q.File != "") {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, q)
	}
	out := make([]Entry, 0, len(seen))
	for _, e := range seen {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// Table is one server's part of the anchor file system: the files of the
// processes it runs. It is safe for concurrent use.
type Table struct {
	mu      sync.Mutex
	workers map[string][]File // by worker ID
}

// Add lists a worker, whose process element is at anchorPath, in dirs.
// The directories must have been checked with ParseDir.
func (t *Table) Add(worker, anchorPath string, dirs [][]string) error {
	if !IsWorkerID(worker) {
		return fmt.Errorf("%w: %q is not a worker ID (R and 16 hex digits)", ErrBadPath, worker)
	}
	if len(dirs) > MaxDirs {
		return fmt.Errorf("%w: %d directories, limit %d", ErrBadPath, len(dirs), MaxDirs)
	}
	files := make([]File, 0, len(dirs))
	for _, d := range dirs {
		f := File{Dir: d, Worker: worker, Anchor: anchorPath}
		if !slices.ContainsFunc(files, func(g File) bool { return slices.Equal(g.Dir, d) }) {
			files = append(files, f)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.workers == nil {
		t.workers = map[string][]File{}
	}
	if _, ok := t.workers[worker]; ok {
		return fmt.Errorf("worker %s is listed already", worker)
	}
	t.workers[worker] = files
	return nil
}

// Remove removes every file of a worker.
func (t *Table) Remove(worker string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.workers, worker)
}

// Files returns the files the query selects. A query for a directory,
// not recursive, also returns the files below it, which ls needs to show
// subdirectories.
func (t *Table) Files(q Query, withBelow bool) []File {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []File
	for _, files := range t.workers {
		for _, f := range files {
			if q.Match(f) || withBelow && q.File == "" && below(f.Dir, q.Dir) {
				out = append(out, f)
			}
		}
	}
	return out
}

// Len is the number of workers listed.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.workers)
}
