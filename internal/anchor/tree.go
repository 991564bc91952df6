package anchor

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"

	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/kind"
)

// Element is what an anchor holds: a process, a channel, a name server...
type Element interface {
	// Kind names the kind of element (package kind). It must not be
	// empty. The tree asks once, when the element is attached, and keeps
	// the answer.
	Kind() kind.Kind
}

// Entry describes one anchor in a listing.
type Entry struct {
	Path string    // absolute: "/X<id>/a/b"
	Kind kind.Kind // kind of the element held or reserved; "" if none
}

// OccupiedError is returned when attaching to or reserving an anchor that
// already holds an element or a reservation.
type OccupiedError struct {
	Path     string    // the anchor
	Kind     kind.Kind // kind of what is there
	Reserved bool      // what is there is a reservation: the element is being made
}

func (e *OccupiedError) Error() string {
	if e.Reserved {
		return fmt.Sprintf("anchor %s is taken: a %s is being created there", e.Path, e.Kind)
	}
	return fmt.Sprintf("anchor %s is taken: it holds a %s", e.Path, e.Kind)
}

// IsOccupied reports whether err is or wraps an *OccupiedError.
func IsOccupied(err error) bool {
	var o *OccupiedError
	return errors.As(err, &o)
}

// Tree holds the anchors below one server's anchor. See the package doc for
// its rules. The zero Tree is not usable; call NewTree.
type Tree struct {
	server ident.ID

	mu    sync.RWMutex // guards everything below; never held while calling out
	root  node         // the server anchor; it never holds an element
	count int          // elements attached, reservations not counted
}

// node is one anchor. It holds an element when elem != nil, a reservation
// when kind != "" and elem == nil, and nothing when kind == "".
type node struct {
	elem     Element
	kind     kind.Kind
	children map[string]*node
}

// NewTree returns an empty tree for the anchors below server's anchor.
func NewTree(server ident.ID) *Tree { return &Tree{server: server} }

// Set attaches e at the anchor elems, creating the anchors on the way. It
// fails with an *OccupiedError if the anchor already holds an element or a
// reservation, and with an error wrapping ErrBadPath if elems is empty (the
// server anchor) or not a valid path below it.
func (t *Tree) Set(elems []string, e Element) error {
	if err := t.checkAnchor(elems); err != nil {
		return err
	}
	k, err := t.checkElement(elems, e)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.create(elems)
	if n.kind != "" {
		return t.occupied(elems, n)
	}
	n.elem, n.kind = e, k
	t.count++
	return nil
}

// Get returns the element at the anchor elems. A reserved anchor holds no
// element yet.
func (t *Tree) Get(elems []string) (Element, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	path := t.lookup(elems)
	if len(path) < 2 {
		return nil, false
	}
	e := path[len(path)-1].elem
	return e, e != nil
}

// Remove detaches e from the anchor elems if e (the same value, compared
// with ==) is still the element there, and removes the anchors left empty on
// the way up. It reports whether it detached e.
func (t *Tree) Remove(elems []string, e Element) bool {
	if e == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	path := t.lookup(elems)
	if len(path) < 2 {
		return false
	}
	n := path[len(path)-1]
	// n.elem is comparable (checked by Set), so == cannot panic: it only
	// compares deeper when both dynamic types are the same.
	if n.elem == nil || n.elem != e {
		return false
	}
	n.elem, n.kind = nil, ""
	t.count--
	t.prune(path, elems)
	return true
}

// Reserve claims the anchor elems for an element of the given kind that is
// not made yet. While reserved, the anchor is listed with kind, Set and
// Reserve on it fail with an *OccupiedError, and Get finds nothing.
//
// The caller must call release exactly once: release(e) attaches e in place
// of the reservation; release(nil) drops the reservation and prunes the
// anchors left empty. If e cannot be attached (empty kind, not comparable),
// release drops the reservation too and returns why. A second call returns
// an error and changes nothing.
func (t *Tree) Reserve(elems []string, k kind.Kind) (release func(e Element) error, err error) {
	if err := t.checkAnchor(elems); err != nil {
		return nil, err
	}
	if k == "" {
		return nil, fmt.Errorf("reserving anchor %s: empty kind", t.path(elems))
	}
	elems = slices.Clone(elems)
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.create(elems)
	if n.kind != "" {
		return nil, t.occupied(elems, n)
	}
	n.kind = k
	released := false // guarded by t.mu
	return func(e Element) error {
		var ekind kind.Kind
		var err error
		if e != nil {
			ekind, err = t.checkElement(elems, e)
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if released {
			return fmt.Errorf("anchor %s: reservation for a %s already released", t.path(elems), k)
		}
		released = true
		// The reserved node stays in the tree until now: nothing else can
		// empty it, and non-empty nodes are never pruned.
		path := t.lookup(elems)
		n := path[len(path)-1]
		if e != nil && err == nil {
			n.elem, n.kind = e, ekind
			t.count++
			return nil
		}
		n.kind = ""
		t.prune(path, elems)
		return err
	}, nil
}

// List returns the children of the anchor elems, or all its descendants when
// recursive, in tree order (sorted component by component, so an anchor comes
// right before its descendants). It returns nil if the anchor does not exist.
// elems == nil lists below the server anchor.
func (t *Tree) List(elems []string, recursive bool) []Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	path := t.lookup(elems)
	if path == nil {
		return nil
	}
	return t.appendEntries(nil, path[len(path)-1], elems, recursive, false)
}

// Count returns the number of elements held, not counting reservations.
func (t *Tree) Count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count
}

// Elements lists the anchors holding an element (not a reservation), in
// tree order. To reach an element, call Get(Split(entry.Path)[1:]).
func (t *Tree) Elements() []Entry {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.appendEntries(nil, &t.root, nil, true, true)
}

// appendEntries appends the children of n, which is at elems, to out; with
// recursive, each child is followed by its descendants. With onlyElements,
// anchors not holding an element are skipped (but still descended into).
func (t *Tree) appendEntries(out []Entry, n *node, elems []string, recursive, onlyElements bool) []Entry {
	for _, name := range slices.Sorted(maps.Keys(n.children)) {
		child := n.children[name]
		p := append(elems[:len(elems):len(elems)], name) // copy: elems is shared
		if !onlyElements || child.elem != nil {
			out = append(out, Entry{Path: t.path(p), Kind: child.kind})
		}
		if recursive {
			out = t.appendEntries(out, child, p, true, onlyElements)
		}
	}
	return out
}

// lookup returns the nodes from the server anchor down to the anchor elems,
// or nil if that anchor does not exist. t.mu must be held.
func (t *Tree) lookup(elems []string) []*node {
	path := make([]*node, 1, len(elems)+1)
	path[0] = &t.root
	for _, name := range elems {
		n := path[len(path)-1].children[name]
		if n == nil {
			return nil
		}
		path = append(path, n)
	}
	return path
}

// create returns the anchor elems, creating it and its ancestors as needed.
// t.mu must be held for writing.
func (t *Tree) create(elems []string) *node {
	n := &t.root
	for _, name := range elems {
		child := n.children[name]
		if child == nil {
			if n.children == nil {
				n.children = make(map[string]*node)
			}
			child = &node{}
			n.children[name] = child
		}
		n = child
	}
	return n
}

// prune removes the anchors of path (as returned by lookup for elems) that
// hold nothing and have no children, from the bottom up. t.mu must be held
// for writing.
func (t *Tree) prune(path []*node, elems []string) {
	for i := len(elems); i > 0; i-- {
		n := path[i]
		if n.kind != "" || len(n.children) > 0 {
			return
		}
		delete(path[i-1].children, elems[i-1])
	}
}

func (t *Tree) occupied(elems []string, n *node) error {
	return &OccupiedError{Path: t.path(elems), Kind: n.kind, Reserved: n.elem == nil}
}

// checkAnchor checks that elems names an anchor that can hold an element.
func (t *Tree) checkAnchor(elems []string) error {
	if len(elems) == 0 {
		return badPath(t.path(nil), "the server anchor holds the server itself; attach elements below it")
	}
	for _, c := range elems {
		if err := CheckElem(c); err != nil {
			return badPath(t.path(elems), "%v", err)
		}
	}
	return nil
}

// checkElement checks that e can be held by the tree and returns its kind.
func (t *Tree) checkElement(elems []string, e Element) (kind.Kind, error) {
	if e == nil {
		return "", fmt.Errorf("attaching to anchor %s: nil element", t.path(elems))
	}
	if !reflect.ValueOf(e).Comparable() {
		return "", fmt.Errorf("attaching to anchor %s: element of type %T is not comparable; use a pointer", t.path(elems), e)
	}
	k := e.Kind()
	if k == "" {
		return "", fmt.Errorf("attaching to anchor %s: element of type %T has an empty kind", t.path(elems), e)
	}
	return k, nil
}

func (t *Tree) path(elems []string) string { return Path{Server: t.server, Elems: elems}.String() }
