package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestKeyRotation: a cluster of five servers goes from key A to key B with
// circuit keyring while clients keep working: no operation fails, no
// member leaves or joins, and afterwards A is refused by every server. The
// ring is kept in -var: a restarted server still uses B, though its
// command line names A.
func TestKeyRotation(t *testing.T) {
	cl := testcluster.Start(t, 0, testcluster.Options{Key: true})
	dir := t.TempDir()
	keyA := cl.KeyFile
	keyB := filepath.Join(dir, "B.key")
	if err := os.WriteFile(keyB, []byte(security.Generate()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := make([]string, 5)
	for i := range vars {
		vars[i] = filepath.Join(dir, fmt.Sprintf("var%d", i))
		args := []string{"-var", vars[i]}
		if i > 0 {
			args = append(args, "-j", cl.Servers[0].URL)
		}
		cl.StartServer(args...)
	}
	cl.WaitMembers(5)
	x0 := "/" + cl.Servers[0].ID
	for _, kind := range []string{"mk@join", "mk@leave"} {
		if r := cl.Run(kind, x0+"/watch/"+kind); r.Code != 0 {
			t.Fatalf("%s: %+v", kind, r)
		}
	}
	// The clients' key file: A, then B once every server accepts B.
	clientKey := filepath.Join(dir, "client.key")
	setClientKey := func(from string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(clientKey+".new", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(clientKey+".new", clientKey); err != nil {
			t.Fatal(err)
		}
	}
	setClientKey(keyA)
	withKey := func(file string) []string { return []string{"CIRCUIT_HMAC=" + file} }

	var stop atomic.Bool
	var ops atomic.Int64
	var mu sync.Mutex
	var failures []string
	var load sync.WaitGroup
	for w := range 2 {
		load.Go(func() {
			for i := 0; !stop.Load() && i < 10000; i++ {
				via := cl.Servers[(i+w)%5]
				at := cl.Servers[(i+w+2)%5]
				args := []string{"peek", "-d", via.URL, "/" + at.ID}
				if i%2 == 1 {
					args = []string{"ls", "-d", via.URL, "/"}
				}
				r := cl.RunEnv(withKey(clientKey), "", args...)
				ops.Add(1)
				if r.Code != 0 || (args[0] == "ls" && len(testcluster.Lines(r.Stdout)) != 5) {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%q: exit %d %s %s", args, r.Code, r.Stdout, r.Stderr))
					mu.Unlock()
				}
			}
		})
	}
	step := func(key string, args ...string) {
		t.Helper()
		r := cl.RunEnv(withKey(key), "", append([]string{"keyring", "-d", cl.Servers[0].URL}, args...)...)
		if r.Code != 0 || len(testcluster.Lines(r.Stdout)) != 5 {
			t.Fatalf("keyring %q: %+v", args, r)
		}
		t.Logf("keyring %s:\n%s", strings.Join(args, " "), r.Stdout)
	}
	// Some load before the rotation, as after it.
	moreOps := func(n int64) {
		t.Helper()
		from := ops.Load()
		testsupport.Eventually(t, 30*time.Second, func() error {
			if ops.Load() < from+n {
				return fmt.Errorf("%d operations so far", ops.Load())
			}
			return nil
		})
	}
	moreOps(4)
	step(keyA, "-install", keyB)
	setClientKey(keyB)
	step(keyB, "-use", keyB)
	step(keyB, "-remove", keyA)
	moreOps(4)
	stop.Store(true)
	load.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d operations failed during the rotation, first: %s", len(failures), ops.Load(), failures[0])
	}
	if ops.Load() < 10 {
		t.Errorf("only %d operations ran during the rotation", ops.Load())
	}
	t.Logf("%d operations during the rotation, none failed", ops.Load())

	// A is refused everywhere; B works everywhere.
	for _, s := range cl.Servers {
		if r := cl.RunEnv(withKey(keyA), "", "peek", "-d", s.URL, "/"+s.ID); r.Code != 4 || !strings.Contains(r.Stderr, "key") {
			t.Errorf("key A at %s after its removal: %+v; want refused, exit 4", s.ID, r)
		}
		if r := cl.RunEnv(withKey(keyB), "", "peek", "-d", s.URL, "/"+s.ID); r.Code != 0 {
			t.Errorf("key B at %s: %+v", s.ID, r)
		}
	}
	// No member left or joined.
	for _, kind := range []string{"mk@join", "mk@leave"} {
		r := cl.RunEnv(withKey(keyB), "", "peek", "-json", "-d", cl.Servers[0].URL, x0+"/watch/"+kind)
		var st struct{ Pending, Delivered int }
		if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil || st.Pending+st.Delivered != 0 {
			t.Errorf("%s after the rotation: %+v, %v; want no events", kind, r, err)
		}
	}
	r := cl.RunEnv(withKey(keyB), "", "keyring", "-list", "-d", cl.Servers[1].URL)
	if r.Code != 0 || strings.Count(r.Stdout, "(in use)") != 5 || strings.Count(r.Stdout, ", ") != 0 {
		t.Errorf("keyring -list: %+v; want five servers with one key each", r)
	}

	// A server restarted with its -var keeps B, though started with A.
	last := cl.Servers[4]
	last.Kill()
	again := cl.StartServer("-var", vars[4], "-j", cl.Servers[1].URL) // -hmac A, as the test cluster starts every server
	testsupport.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(again.Stderr(), "not in the keyring kept in") {
			return fmt.Errorf("the restarted server did not say its ring wins over -hmac:\n%s", again.Stderr())
		}
		return nil
	})
	if r := cl.RunEnv(withKey(keyB), "", "peek", "-d", again.URL, "/"+again.ID); r.Code != 0 {
		t.Errorf("key B at the restarted server: %+v", r)
	}
	if r := cl.RunEnv(withKey(keyA), "", "peek", "-d", again.URL, "/"+again.ID); r.Code != 4 {
		t.Errorf("key A at the restarted server: %+v; want refused", r)
	}
	if r := cl.RunEnv(withKey(keyB), "", "ls", "-d", again.URL, "/"); len(testcluster.Lines(r.Stdout)) != 5 {
		t.Errorf("the restarted server's view: %+v; want the five", r)
	}
}
