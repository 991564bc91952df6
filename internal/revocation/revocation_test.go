package revocation

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func id(n int) string { return fmt.Sprintf("%032x", n+1) }

func TestAddMergePersist(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var told []string
	l.Watch(func(e Entry) { told = append(told, e.ID+":"+fmt.Sprint(len(l.All()))) })
	in := time.Now().Add(time.Hour)
	if added, err := l.Add(Entry{ID: id(1), Name: "alice", Until: in, At: time.Now(), By: "key"}); err != nil || !added {
		t.Fatalf("add: %v, %v", added, err)
	}
	if added, err := l.Add(Entry{ID: id(1), Until: in}); err != nil || added {
		t.Fatalf("adding again: %v, %v; want not new", added, err)
	}
	if len(told) != 1 || told[0] != id(1)+":1" {
		t.Fatalf("watcher told %v", told)
	}
	if _, ok := l.Revoked([]string{id(9), id(1)}); !ok {
		t.Fatal("a credential under a revoked one is not revoked")
	}
	if _, ok := l.Revoked([]string{id(9)}); ok {
		t.Fatal("an unlisted credential is revoked")
	}

	// Another server's copy: one new entry, one known, one expired, one
	// malformed, one claiming to outlive any credential.
	other := fmt.Sprintf(`[{"ID":%q,"Until":%q},{"ID":%q,"Until":%q},{"ID":%q,"Until":%q},{"ID":"zz","Until":%q},{"ID":%q,"Until":"9999-01-01T00:00:00Z"}]`,
		id(2), in.Format(time.RFC3339Nano), id(1), in.Format(time.RFC3339Nano),
		id(3), time.Now().Add(-time.Second).Format(time.RFC3339Nano), in.Format(time.RFC3339Nano), id(4))
	if n, err := l.Merge([]byte(other)); err != nil || n != 2 {
		t.Fatalf("merge: %d new, %v; want 2", n, err)
	}
	for _, e := range l.All() {
		if e.Until.After(time.Now().Add(maxLife)) {
			t.Fatalf("entry %s kept until %v", e.ID, e.Until)
		}
	}
	if _, err := l.Merge([]byte("{not json")); err == nil {
		t.Fatal("merged junk")
	}

	// A restart reads the file.
	again, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(again.All()); got != 3 {
		t.Fatalf("reopened with %d entries, want 3", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "revoked.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v, %v", fi, err)
	}
	if _, err := l.Add(Entry{ID: "short", Until: in}); err == nil || !strings.Contains(err.Error(), "32 hex digits") {
		t.Fatalf("adding a bad ID: %v", err)
	}
}

func TestExpiryAndBound(t *testing.T) {
	l, _ := Open("")
	now := time.Now()
	var b strings.Builder
	b.WriteString("[")
	for i := range MaxEntries + 10 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"ID":%q,"Until":%q}`, id(100+i), now.Add(time.Hour+time.Duration(i)*time.Second).Format(time.RFC3339Nano))
	}
	b.WriteString("]")
	if _, err := l.Merge([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	all := l.All()
	if len(all) != MaxEntries {
		t.Fatalf("%d entries, want the bound %d", len(all), MaxEntries)
	}
	if _, ok := l.Revoked([]string{id(100)}); ok {
		t.Fatal("the entry that ends soonest was kept past the bound")
	}
	if _, ok := l.Revoked([]string{id(100 + MaxEntries + 9)}); !ok {
		t.Fatal("the entry that ends last was dropped")
	}
	// An expired credential's entry goes: it is refused as expired.
	l, _ = Open("")
	if _, err := l.Add(Entry{ID: id(1), Until: time.Now().Add(30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Revoked([]string{id(1)}); !ok {
		t.Fatal("not revoked")
	}
	if _, err := l.merge([]byte("[]"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Revoked([]string{id(1)}); ok {
		t.Fatal("an expired credential's entry was kept")
	}
}

func FuzzMerge(f *testing.F) {
	f.Add([]byte(`[{"ID":"00000000000000000000000000000001","Until":"2999-01-01T00:00:00Z"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, _ := Open("")
		l.Merge(b)
		for _, e := range l.All() {
			if CheckID(e.ID) != nil {
				t.Fatalf("kept a bad ID %q", e.ID)
			}
		}
	})
}
