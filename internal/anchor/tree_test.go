package anchor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/circuit-project/circuit/internal/kind"
)

type elem struct{ kind kind.Kind }

func (e *elem) Kind() kind.Kind { return e.kind }

type sliceElem []string // not comparable

func (sliceElem) Kind() kind.Kind { return "slice" }

func p(s string) []string { return Split(s) }

func entries(pairs ...string) []Entry {
	var out []Entry
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, Entry{Path: "/" + sid + pairs[i], Kind: kind.Kind(pairs[i+1])})
	}
	return out
}

func checkList(t *testing.T, tr *Tree, at string, recursive bool, want []Entry) {
	t.Helper()
	if got := tr.List(p(at), recursive); !reflect.DeepEqual(got, want) {
		t.Errorf("List(%q, %v) = %v, want %v", at, recursive, got, want)
	}
}

func TestTreeSetGet(t *testing.T) {
	tr := NewTree(id)
	e := &elem{kind.Proc}
	if err := tr.Set(p("a/b"), e); err != nil {
		t.Fatal(err)
	}
	if got, ok := tr.Get(p("a/b")); !ok || got != e {
		t.Errorf("Get(a/b) = %v, %v; want %v, true", got, ok, e)
	}
	for _, at := range []string{"", "a", "a/b/c", "x"} {
		if got, ok := tr.Get(p(at)); ok {
			t.Errorf("Get(%q) = %v, want nothing", at, got)
		}
	}
	if n := tr.Count(); n != 1 {
		t.Errorf("Count() = %d, want 1", n)
	}
	checkList(t, tr, "", true, entries("/a", "", "/a/b", "proc"))
}

func TestTreeOccupied(t *testing.T) {
	tr := NewTree(id)
	if err := tr.Set(p("a"), &elem{kind.Proc}); err != nil {
		t.Fatal(err)
	}
	err := tr.Set(p("a"), &elem{kind.Chan})
	var occ *OccupiedError
	if !errors.As(err, &occ) || !IsOccupied(err) {
		t.Fatalf("second Set: %v, want an *OccupiedError", err)
	}
	want := OccupiedError{Path: "/" + sid + "/a", Kind: kind.Proc}
	if *occ != want {
		t.Errorf("second Set: %#v, want %#v", *occ, want)
	}
	if msg := err.Error(); !strings.Contains(msg, "/"+sid+"/a") || !strings.Contains(msg, "proc") {
		t.Errorf("error %q does not name the anchor and what is there", msg)
	}
	if IsOccupied(errors.New("other")) {
		t.Error("IsOccupied of another error is true")
	}
	if n := tr.Count(); n != 1 {
		t.Errorf("Count() = %d, want 1", n)
	}
}

func TestTreeSetErrors(t *testing.T) {
	tr := NewTree(id)
	for _, elems := range [][]string{nil, {}, {""}, {"a", ".."}, {"."}, {"..."}, {"a", "b\x00"}, {strings.Repeat("x", 256)}} {
		err := tr.Set(elems, &elem{kind.Proc})
		if !errors.Is(err, ErrBadPath) {
			t.Errorf("Set(%q): %v, want ErrBadPath", elems, err)
		}
		if _, err := tr.Reserve(elems, kind.Proc); !errors.Is(err, ErrBadPath) {
			t.Errorf("Reserve(%q): %v, want ErrBadPath", elems, err)
		}
	}
	for _, e := range []Element{nil, sliceElem{"x"}, &elem{""}} {
		if err := tr.Set(p("a/b"), e); err == nil || !strings.Contains(err.Error(), "/"+sid+"/a/b") {
			t.Errorf("Set(a/b, %#v): %v, want an error naming the anchor", e, err)
		}
	}
	if _, err := tr.Reserve(p("a"), ""); err == nil {
		t.Error("Reserve with an empty kind succeeded")
	}
	checkList(t, tr, "", true, nil)
	if n := tr.Count(); n != 0 {
		t.Errorf("Count() = %d, want 0", n)
	}
}

func TestTreeRemovePrunes(t *testing.T) {
	tr := NewTree(id)
	c, x, top := &elem{kind.Proc}, &elem{kind.Chan}, &elem{kind.DNS}
	for at, e := range map[string]*elem{"a/b/c": c, "a/x": x, "a": top} {
		if err := tr.Set(p(at), e); err != nil {
			t.Fatal(err)
		}
	}
	if tr.Remove(p("a/b/c"), &elem{kind.Proc}) || tr.Remove(p("a/b/c"), nil) || tr.Remove(p("a/b"), c) || tr.Remove(nil, c) {
		t.Error("Remove of something not there succeeded")
	}
	if !tr.Remove(p("a/b/c"), c) {
		t.Fatal("Remove(a/b/c) failed")
	}
	checkList(t, tr, "", true, entries("/a", "dns", "/a/x", "chan"))
	if tr.Remove(p("a/b/c"), c) {
		t.Error("second Remove(a/b/c) succeeded")
	}
	if !tr.Remove(p("a"), top) {
		t.Fatal("Remove(a) failed")
	}
	checkList(t, tr, "", true, entries("/a", "", "/a/x", "chan"))
	if !tr.Remove(p("a/x"), x) {
		t.Fatal("Remove(a/x) failed")
	}
	checkList(t, tr, "", true, nil)
	if n := tr.Count(); n != 0 {
		t.Errorf("Count() = %d, want 0", n)
	}
}

func TestTreeList(t *testing.T) {
	tr := NewTree(id)
	// "a-c" < "a/b" as strings, but tree order puts a's descendants first.
	for _, s := range []string{"b", "a-c", "a/z", "a/b/c", "a/b/a", "a.b", "B"} {
		if err := tr.Set(p(s), &elem{kind.Kind("k" + s)}); err != nil {
			t.Fatal(err)
		}
	}
	checkList(t, tr, "", false, entries("/B", "kB", "/a", "", "/a-c", "ka-c", "/a.b", "ka.b", "/b", "kb"))
	checkList(t, tr, "", true, entries(
		"/B", "kB",
		"/a", "",
		"/a/b", "",
		"/a/b/a", "ka/b/a",
		"/a/b/c", "ka/b/c",
		"/a/z", "ka/z",
		"/a-c", "ka-c",
		"/a.b", "ka.b",
		"/b", "kb"))
	checkList(t, tr, "a", false, entries("/a/b", "", "/a/z", "ka/z"))
	checkList(t, tr, "a/b", true, entries("/a/b/a", "ka/b/a", "/a/b/c", "ka/b/c"))
	checkList(t, tr, "a/z", true, nil)
	checkList(t, tr, "nope", false, nil)
	checkList(t, tr, "a/nope", true, nil)
	want := entries("/B", "kB", "/a/b/a", "ka/b/a", "/a/b/c", "ka/b/c", "/a/z", "ka/z", "/a-c", "ka-c", "/a.b", "ka.b", "/b", "kb")
	if got := tr.Elements(); !reflect.DeepEqual(got, want) {
		t.Errorf("Elements() = %v, want %v", got, want)
	}
	for _, en := range tr.Elements() {
		if e, ok := tr.Get(Split(en.Path)[1:]); !ok || e.Kind() != en.Kind {
			t.Errorf("Get(%s) = %v, %v; want a %s", en.Path, e, ok, en.Kind)
		}
	}
}

func TestTreeReserve(t *testing.T) {
	tr := NewTree(id)
	elems := []string{"a", "b"}
	release, err := tr.Reserve(elems, kind.Proc)
	if err != nil {
		t.Fatal(err)
	}
	elems[1] = "changed" // the tree must have kept its own copy
	checkList(t, tr, "", true, entries("/a", "", "/a/b", "proc"))
	if e, ok := tr.Get(p("a/b")); ok {
		t.Errorf("Get of a reserved anchor = %v", e)
	}
	if n := tr.Count(); n != 0 {
		t.Errorf("Count() = %d with only a reservation, want 0", n)
	}
	err = tr.Set(p("a/b"), &elem{kind.Chan})
	var occ *OccupiedError
	if !errors.As(err, &occ) || *occ != (OccupiedError{Path: "/" + sid + "/a/b", Kind: kind.Proc, Reserved: true}) {
		t.Errorf("Set on a reserved anchor: %v", err)
	}
	if _, err := tr.Reserve(p("a/b"), kind.Chan); !IsOccupied(err) {
		t.Errorf("Reserve on a reserved anchor: %v", err)
	}
	e := &elem{kind.Proc}
	if err := release(e); err != nil {
		t.Fatal(err)
	}
	if got, ok := tr.Get(p("a/b")); !ok || got != e {
		t.Errorf("Get after release = %v, %v; want %v", got, ok, e)
	}
	if err := release(nil); err == nil {
		t.Error("second release succeeded")
	}
	if got, _ := tr.Get(p("a/b")); got != e || tr.Count() != 1 {
		t.Error("second release changed the tree")
	}
	if _, err := tr.Reserve(p("a/b"), kind.Chan); !IsOccupied(err) {
		t.Errorf("Reserve on an occupied anchor: %v", err)
	}

	// Dropping a reservation prunes its anchors, and so does a failed attach.
	for _, with := range []Element{nil, sliceElem{}, &elem{""}} {
		release, err := tr.Reserve(p("c/d/e"), kind.Docker)
		if err != nil {
			t.Fatal(err)
		}
		checkList(t, tr, "c", true, entries("/c/d", "", "/c/d/e", "docker"))
		if err := release(with); (err != nil) != (with != nil) {
			t.Errorf("release(%#v) = %v", with, err)
		}
		checkList(t, tr, "", true, entries("/a", "", "/a/b", "proc"))
	}
}

// TestTreeConcurrent has many goroutines attach, reserve, read and remove on
// a few shared anchors; run it with -race. Each goroutine owns the elements it
// attached, so nobody else may detach them, and at the end the tree must be
// empty: no element, no anchor left behind.
func TestTreeConcurrent(t *testing.T) {
	tr := NewTree(id)
	names := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range 500 {
				var elems []string
				for range 1 + rng.IntN(3) {
					elems = append(elems, names[rng.IntN(len(names))])
				}
				e := &elem{kind.Kind(fmt.Sprintf("g%d", g))}
				switch rng.IntN(4) {
				case 0:
					if err := tr.Set(elems, e); err != nil {
						if !IsOccupied(err) {
							t.Errorf("Set(%q): %v", elems, err)
						}
						continue
					}
					if got, ok := tr.Get(elems); !ok || got != e {
						t.Errorf("Get(%q) = %v, want the element just set", elems, got)
					}
					if !tr.Remove(elems, e) {
						t.Errorf("Remove(%q) of an own element failed", elems)
					}
				case 1:
					release, err := tr.Reserve(elems, e.kind)
					if err != nil {
						if !IsOccupied(err) {
							t.Errorf("Reserve(%q): %v", elems, err)
						}
						continue
					}
					if i%2 == 0 {
						if err := release(nil); err != nil {
							t.Error(err)
						}
						continue
					}
					if err := release(e); err != nil {
						t.Error(err)
					}
					if !tr.Remove(elems, e) {
						t.Errorf("Remove(%q) of an own released element failed", elems)
					}
				case 2:
					for _, en := range tr.List(elems[:1], true) {
						if !strings.HasPrefix(en.Path, "/"+sid+"/"+elems[0]+"/") {
							t.Errorf("List(%q) gave %s", elems[:1], en.Path)
						}
					}
				case 3:
					tr.Elements()
					tr.Count()
				}
			}
		})
	}
	wg.Wait()
	if n := tr.Count(); n != 0 {
		t.Errorf("Count() = %d at the end, want 0", n)
	}
	checkList(t, tr, "", true, nil)
}
