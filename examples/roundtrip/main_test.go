package main

import (
	"regexp"
	"testing"

	"github.com/circuit-project/circuit/internal/testsupport/build"
	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
)

func TestMain(m *testing.M) { build.Main(m) }

func TestRoundTrip(t *testing.T) {
	bin := build.Program(t, ".")
	cl := testcluster.Start(t, 2, testcluster.Options{Key: true, Local: true})
	r := cl.RunProgram(bin, "-d", cl.Servers[0].URL, "-host", cl.Servers[1].ID)
	if r.Code != 0 || !regexp.MustCompile(`^Roundtrip complete \(worker R[0-9a-f]{16} on `+cl.Servers[1].ID+`\)\.\n$`).MatchString(r.Stdout) {
		t.Fatalf("roundtrip: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Log(r.Stdout)
	// Nothing is left: the worker and the channel are gone.
	if r := cl.Run("ls", "/..."); len(testcluster.Lines(r.Stdout)) != 2 {
		t.Fatalf("left behind:\n%s", r.Stdout)
	}
}
