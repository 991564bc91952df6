package circuit

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// hold waits until its context ends and says so; its ballast only makes
// its request large.
func hold(ctx context.Context, ballast string) string {
	select {
	case <-ctx.Done():
		return fmt.Sprintf("held %d bytes until asked to stop", len(ballast))
	case <-time.After(time.Minute):
		return "never asked to stop"
	}
}

func init() { Register(hold) }

// TestRespawn: respawn replaces each worker of a directory, on its server,
// with the same function, arguments and directories; the old worker's
// context ends, and it returns; its record says "replaced by" its
// successor, whose record names the same parent and the worker it replaced;
// peek shows the new binary's digest and build. Another binary is uploaded
// once and used. A new worker that cannot run its function stops the
// respawn and leaves the old one running; a worker whose request was too
// large to keep cannot be respawned.
func TestRespawn(t *testing.T) {
	cl := cluster(t, 2, testcluster.Options{Key: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Client()
	if err != nil {
		t.Fatal(err)
	}
	host := cl.Servers[1].ID
	var old []*Worker
	for i := range 2 {
		w, err := Spawn(host, []string{"/test/respawn", "/test/respawn-too"}, hold, fmt.Sprint("ballast ", i))
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, w)
	}
	oldIDs := []string{old[0].ID(), old[1].ID()}

	// Another build: this binary with bytes appended, so another digest.
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir() + "/other"
	if err := os.WriteFile(other, append(self, "another build"...), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	otherSum, _, err := client.FileDigest(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	var seen []client.Replacement
	reps, err := Respawn(ctx, "/test/respawn/...", client.RespawnOpts{Binary: other, Grace: 10 * time.Second, Replaced: func(r client.Replacement) { seen = append(seen, r) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 || len(seen) != 2 {
		t.Fatalf("respawn replaced %+v (reported %d), want the 2 workers", reps, len(seen))
	}
	var newIDs []string
	for _, r := range reps {
		if !slices.Contains(oldIDs, r.Old) || r.New == "" || slices.Contains(oldIDs, r.New) || r.Anchor != "/"+host+"/"+r.New || r.Binary != otherSum {
			t.Errorf("a replacement: %+v", r)
		}
		newIDs = append(newIDs, r.New)
	}
	for i, w := range old {
		res, err := wait(t, w)
		if err != nil || len(res) != 1 || res[0] != fmt.Sprintf("held %d bytes until asked to stop", len(fmt.Sprint("ballast ", i))) {
			t.Errorf("the replaced worker %s: %v, %v; want it asked to stop", w.ID(), res, err)
		}
	}
	for _, dir := range []string{"/test/respawn", "/test/respawn-too"} {
		entries, err := c.List(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, e := range entries {
			if e.Kind == client.KindWorker {
				listed = append(listed, e.Path[strings.LastIndexByte(e.Path, '/')+1:])
			}
		}
		slices.Sort(listed)
		want := slices.Sorted(slices.Values(newIDs))
		if !slices.Equal(listed, want) {
			t.Errorf("%s lists %v after the respawn, want the new workers %v", dir, listed, want)
		}
	}
	st, err := c.ProcAt(reps[0].Anchor).Peek(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != "running" || st.Binary != otherSum || !strings.Contains(st.Build, "github.com/circuit-project/circuit") || !strings.Contains(st.Build, "go1.") ||
		st.Ready.IsZero() || st.Cmd.Stdin != nil {
		t.Errorf("peek of a new worker: phase %s, binary %s, build %q, ready %v, stdin %q", st.Phase, st.Binary, st.Build, st.Ready, st.Cmd.Stdin)
	}

	// The records: the old replaced by the new, the new with the same
	// parent and the worker it replaced.
	byID := map[string]client.GraveRecord{}
	records := func(want int, what string) {
		t.Helper()
		testsupport.Eventually(t, 10*time.Second, func() error {
			recs, err := c.Graveyard(ctx, "/test/respawn")
			if err != nil {
				return err
			}
			for _, r := range recs {
				byID[r.ID] = r
			}
			if len(recs) != want {
				return fmt.Errorf("%d records, want %d (%s)", len(recs), want, what)
			}
			return nil
		})
	}
	records(2, "the replaced workers'")
	for _, r := range reps {
		if rec := byID[r.Old]; rec.Cause != "replaced by "+r.New || !strings.HasPrefix(rec.Parent, "client key at ") {
			t.Errorf("the record of the replaced worker %s: %+v", r.Old, rec)
		}
	}

	// A binary without the function: the respawn stops, nothing replaced.
	if _, err := Respawn(ctx, "/test/respawn", client.RespawnOpts{Binary: "/bin/true"}); err == nil || !strings.Contains(err.Error(), "ended before it ran its function") {
		t.Errorf("a respawn onto /bin/true: %v", err)
	}
	for _, id := range newIDs {
		if st, err := c.ProcAt("/" + host + "/" + id).Peek(ctx); err != nil || st.Phase != "running" {
			t.Errorf("worker %s after a failed respawn: %v, %v; want it running", id, st.Phase, err)
		}
	}
	if _, err := Respawn(ctx, "/test/respawn-none", client.RespawnOpts{}); err != nil {
		t.Errorf("a respawn of an empty directory: %v", err)
	}

	// A request too large to keep.
	big, err := Spawn(host, []string{"/test/respawn-big"}, hold, strings.Repeat("b", client.MaxStdin+1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Respawn(ctx, "/test/respawn-big", client.RespawnOpts{}); err == nil || !strings.Contains(err.Error(), "cannot be respawned") {
		t.Errorf("a respawn of a worker with a streamed request: %v", err)
	}
	big.Kill(ctx)

	// The successors' records, once they end.
	if _, err := c.Kill(ctx, "/test/respawn/..."); err != nil {
		t.Fatal(err)
	}
	records(5, "the replaced, the successors, the one that failed")
	for _, r := range reps {
		if rec := byID[r.New]; rec.Replaces != r.Old || rec.Parent != byID[r.Old].Parent || rec.Binary != otherSum {
			t.Errorf("the record of the successor %s: %+v", r.New, rec)
		}
	}
	noOrphans(t, cl)
}
