package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

// TestJSONOutput runs every command that prints data with -json on a real
// cluster of two and decodes what it printed: ls one object a line, the
// others one document, errors on standard error with the usual exit codes.
func TestJSONOutput(t *testing.T) {
	cl := testcluster.Start(t, 2, testcluster.Options{Local: true})
	s0, s1 := cl.Servers[0], cl.Servers[1]
	proc := "/" + s1.ID + "/R00000000000000c1" // listed in /jobs/web until killed
	if r := cl.RunVia(s0, `{"Path": "/bin/sleep", "Args": ["600"], "Dirs": ["/jobs/web"]}`, "mkproc", proc); r.Code != 0 {
		t.Fatalf("mkproc: %+v", r)
	}
	quick := "/" + s1.ID + "/quick"
	if r := cl.RunVia(s0, `{"Path": "/bin/sh", "Args": ["-c", "echo out; echo err >&2; exit 3"]}`, "mkproc", quick); r.Code != 0 {
		t.Fatalf("mkproc: %+v", r)
	}

	type entry struct {
		Path, Kind, Server, Anchor, DC string
		Labels                         map[string]string
	}
	decodeLines := func(t *testing.T, out string) []entry {
		t.Helper()
		var es []entry
		for _, line := range testcluster.Lines(out) {
			var e entry
			dec := json.NewDecoder(strings.NewReader(line))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil {
				t.Fatalf("ls -json line %q: %v", line, err)
			}
			es = append(es, e)
		}
		return es
	}
	one := func(t *testing.T, out string, v any) {
		t.Helper()
		if n := len(testcluster.Lines(out)); n != 1 {
			t.Fatalf("want one line of JSON, got %d:\n%s", n, out)
		}
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("decoding %q: %v", out, err)
		}
	}

	t.Run("ls servers", func(t *testing.T) {
		r := cl.Run("ls", "-json", "/")
		es := decodeLines(t, r.Stdout)
		if r.Code != 0 || len(es) != 2 {
			t.Fatalf("ls -json /: %+v", r)
		}
		for _, e := range es {
			if e.Kind != "server" || e.Path != "/"+e.Server {
				t.Fatalf("server entry %+v", e)
			}
		}
	})
	t.Run("ls elements and directories", func(t *testing.T) {
		r := cl.Run("ls", "-json", "/...")
		byPath := map[string]entry{}
		for _, e := range decodeLines(t, r.Stdout) {
			byPath[e.Path] = e
		}
		if e := byPath[proc]; e.Kind != "proc" || e.Server != s1.ID {
			t.Fatalf("ls -json /...: %s is %+v\n%s", proc, e, r.Stdout)
		}
		if e, ok := byPath["/jobs/web"]; !ok || e.Kind != "dir" || e.Server != "" {
			t.Fatalf("ls -json /...: /jobs/web is %+v\n%s", e, r.Stdout)
		}
		if e := byPath["/jobs/web/R00000000000000c1"]; e.Kind != "worker" || e.Anchor != proc || e.Server != s1.ID {
			t.Fatalf("ls -json /...: the worker's file is %+v\n%s", e, r.Stdout)
		}
	})
	t.Run("peek and wait", func(t *testing.T) {
		var st struct {
			Phase    string
			ExitCode int
			Cmd      struct{ Path string }
		}
		r := cl.Run("wait", "-json", quick)
		if r.Code != 3 {
			t.Fatalf("wait -json exits with the process's code 3: %+v", r)
		}
		one(t, r.Stdout, &st)
		if st.Phase != "exited" || st.ExitCode != 3 || st.Cmd.Path != "/bin/sh" {
			t.Fatalf("wait -json: %+v", st)
		}
		var info struct {
			ID      string
			Members []struct{ ID string }
		}
		one(t, cl.Run("peek", "-json", "/"+s0.ID).Stdout, &info)
		if info.ID != s0.ID || len(info.Members) != 2 {
			t.Fatalf("peek -json of a server: %+v", info)
		}
	})
	t.Run("run", func(t *testing.T) {
		r := cl.Run("run", "-json", "-n", "--", "sh", "-c", "echo hi; echo oops >&2; exit 4")
		var out struct {
			Results []struct {
				Server, Stdout, Stderr, Error string
				ExitCode                      int
			}
		}
		one(t, r.Stdout, &out)
		if r.Code != 4 || len(out.Results) != 2 {
			t.Fatalf("run -json: %+v", r)
		}
		for _, res := range out.Results {
			if res.Stdout != "hi\n" || res.Stderr != "oops\n" || res.ExitCode != 4 || res.Error != "" {
				t.Fatalf("run -json result %+v", res)
			}
		}
		if out.Results[0].Server > out.Results[1].Server {
			t.Fatalf("results not in the order of their IDs: %+v", out.Results)
		}
	})
	t.Run("kill", func(t *testing.T) {
		var out struct{ Killed []entry }
		r := cl.Run("kill", "-json", "/jobs/web")
		one(t, r.Stdout, &out)
		if r.Code != 0 || len(out.Killed) != 1 || out.Killed[0].Anchor != proc {
			t.Fatalf("kill -json: %+v\n%+v", r, out)
		}
	})
	t.Run("errors stay on stderr", func(t *testing.T) {
		r := cl.Run("peek", "-json", "/"+s0.ID+"/nothing")
		if r.Code != 3 || r.Stdout != "" || !strings.Contains(r.Stderr, "nothing") {
			t.Fatalf("peek -json of nothing: %+v", r)
		}
		if r := cl.Run("ls", "-json"); r.Code != 2 || r.Stdout != "" {
			t.Fatalf("ls -json without a path: %+v", r)
		}
	})
	t.Run("keygen and stk", func(t *testing.T) {
		var k struct{ Key string }
		one(t, cl.RunEnv(nil, "", "keygen", "-json").Stdout, &k)
		if len(k.Key) < 40 {
			t.Fatalf("keygen -json: %+v", k)
		}
		var s struct{ Server, Stack string }
		one(t, cl.Run("stk", "-json", "/"+s1.ID).Stdout, &s)
		if s.Server != s1.ID || !strings.Contains(s.Stack, "goroutine") {
			t.Fatalf("stk -json: server %q, %d bytes of stack", s.Server, len(s.Stack))
		}
	})
}
