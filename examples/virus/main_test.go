package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

func TestMain(m *testing.M) { build.Main(m) }

var fileLine = regexp.MustCompile(`^worker +/virus/(nucleus|payload)/(R[0-9a-f]{16}) -> /(X[0-9a-f]{16})/R[0-9a-f]{16}$`)

// cells lists the virus through server via: role to worker ID and server.
func cells(cl *testcluster.Cluster, via *testcluster.Proc) map[string][2]string {
	r := cl.RunVia(via, "", "ls", "-l", "/virus/...")
	out := map[string][2]string{}
	for _, l := range testcluster.Lines(r.Stdout) {
		if m := fileLine.FindStringSubmatch(l); m != nil {
			if _, dup := out[m[1]]; dup {
				out[m[1]+"+"] = [2]string{m[2], m[3]} // a second of a role
				continue
			}
			out[m[1]] = [2]string{m[2], m[3]}
		}
	}
	return out
}

// TestVirusSurvivesItsHost starts the virus on four servers, kills the
// server its nucleus runs on, then the one its payload runs on, and checks
// that each time the pair is whole again on the living servers.
func TestVirusSurvivesItsHost(t *testing.T) {
	bin := build.Program(t, ".")
	cl := testcluster.Start(t, 4, testcluster.Options{Local: true})
	byID := map[string]*testcluster.Proc{}
	for _, s := range cl.Servers {
		byID[s.ID] = s
	}
	r := cl.RunProgram(bin, "-d", cl.Servers[0].URL, "-life", "10")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "nucleus R") {
		t.Fatalf("virus: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	whole := func(via *testcluster.Proc, dead map[string]bool) map[string][2]string {
		var got map[string][2]string
		testsupport.Eventually(t, 20*time.Second, func() error {
			got = cells(cl, via)
			n, p := got["nucleus"], got["payload"]
			if len(got) == 2 && n[0] != "" && p[0] != "" && n[1] != p[1] && !dead[n[1]] && !dead[p[1]] {
				return nil
			}
			return fmt.Errorf("the virus is not whole on living servers: %v (dead %v)", got, dead)
		})
		return got
	}
	dead := map[string]bool{}
	via := cl.Servers[0]
	v := whole(via, dead)
	t.Logf("virus: nucleus %v, payload %v", v["nucleus"], v["payload"])
	for _, role := range []string{"nucleus", "payload"} {
		victim := byID[v[role][1]]
		survivor := v[map[string]string{"nucleus": "payload", "payload": "nucleus"}[role]]
		start := time.Now()
		victim.Kill()
		dead[victim.ID] = true
		for _, s := range cl.Servers {
			if !dead[s.ID] {
				via = s
			}
		}
		v = whole(via, dead)
		t.Logf("FIGURE virus whole again %v after its %s's host was killed: nucleus %v, payload %v",
			time.Since(start).Round(time.Millisecond), role, v["nucleus"], v["payload"])
		other := map[string]string{"nucleus": "payload", "payload": "nucleus"}[role]
		if v[other] != survivor {
			t.Fatalf("the %s was replaced too: was %v, now %v", other, survivor, v[other])
		}
	}
	if r := cl.RunProgram(bin, "-d", via.URL, "-stop"); r.Code != 0 || r.Stdout != "virus killed\n" {
		t.Fatalf("virus -stop: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := cl.RunVia(via, "", "ls", "/virus"); r.Code != 3 {
		t.Fatalf("after -stop: exit %d\n%s", r.Code, r.Stdout)
	}
}
