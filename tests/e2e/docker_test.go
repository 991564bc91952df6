package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport/testcluster"
	"github.com/circuit-project/circuit/internal/testsupport/testimage"
)

var (
	imageOnce sync.Once
	imageRef  string
	imageErr  error
)

// busyboxImage makes, once, an image holding a static busybox and links to
// its applets. No registry is needed.
func busyboxImage(t *testing.T) string {
	t.Helper()
	cli := testimage.Engine(t)
	defer cli.Close()
	imageOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		imageRef, imageErr = testimage.Ensure(ctx, cli, "circuit-e2e-busybox")
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageRef
}

// TestSeedDockerWalkthrough runs seed 000's mkdkr example, verbatim but for
// the image, and the verbs containers share with processes.
func TestSeedDockerWalkthrough(t *testing.T) {
	image := busyboxImage(t)
	cl := testcluster.Start(t, 1, testcluster.Options{})
	plain := cl.Servers[0]
	dockerd := cl.StartServer("-docker", "-j", plain.URL)
	cl.WaitMembers(2)
	x := "/" + dockerd.ID
	docky := x + "/docky"
	t.Cleanup(func() { cl.Run("scrub", docky) })
	seed := `{
"Image": "` + image + `",
"Memory": 1000000000,
"CpuShares": 3,
"Lxc": ["lxc.cgroup.cpuset.cpus = 0,1"],
"Volume": ["/webapp", "` + t.TempDir() + `:/opt/webapp:ro"],
"Dir": "/",
"Entry": "",
"Env": ["PATH=/usr/bin"],
"Path": "/bin/ls",
"Args": ["/"],
}
`
	r := cl.RunVia(plain, seed, "mkdkr", docky)
	if r.Code != 0 || !strings.Contains(r.Stderr, "warning") || !strings.Contains(r.Stderr, "Lxc") {
		t.Fatalf("mkdkr of the seed's example: %+v", r)
	}
	if r := cl.Run("stdin", docky); r.Code != 0 {
		t.Fatalf("stdin: %+v", r)
	}
	if r := cl.Run("stdout", docky); r.Code != 0 || !strings.Contains(r.Stdout, "bin\n") || !strings.Contains(r.Stdout, "webapp") {
		t.Fatalf("stdout: %+v", r)
	}
	if r := cl.Run("wait", docky); r.Code != 0 || !strings.Contains(r.Stdout, `"Phase": "exited"`) {
		t.Fatalf("wait: %+v", r)
	}
	var inspect struct {
		ID         string `json:"Id"`
		HostConfig struct {
			Memory    int64
			CpuShares int64
		}
	}
	r = cl.Run("peek", docky)
	if err := json.Unmarshal([]byte(r.Stdout), &inspect); err != nil || inspect.ID == "" || inspect.HostConfig.Memory != 1000000000 || inspect.HostConfig.CpuShares != 3 {
		t.Fatalf("peek: %v %.300s", err, r.Stdout)
	}
	if r := cl.Run("ls", "-l", x+"/..."); !strings.Contains(r.Stdout, "docker  "+docky) {
		t.Fatalf("ls -l: %q", r.Stdout)
	}
	if r := cl.Run("scrub", docky); r.Code != 0 {
		t.Fatal(r)
	}
	if out, _ := exec.Command("docker", "inspect", inspect.ID).CombinedOutput(); !strings.Contains(string(out), "No such") {
		t.Fatalf("the scrubbed container is still there: %.200s", out)
	}

	// Streams, exit codes and signals, as for processes.
	upper := x + "/upper"
	t.Cleanup(func() { cl.Run("scrub", upper) })
	if r := cl.RunVia(plain, `{"Image": "`+image+`", "Path": "/bin/tr", "Args": ["a-z", "A-Z"], "Scrub": true}`, "mkdkr", upper); r.Code != 0 {
		t.Fatalf("mkdkr tr: %+v", r)
	}
	if r := cl.RunVia(plain, "hello, docker\n", "stdin", upper); r.Code != 0 {
		t.Fatalf("stdin: %+v", r)
	}
	if r := cl.Run("stdout", upper); r.Stdout != "HELLO, DOCKER\n" {
		t.Fatalf("stdout: %+v", r)
	}
	nap := x + "/nap"
	t.Cleanup(func() { cl.Run("scrub", nap) })
	if r := cl.RunVia(plain, `{"Image": "`+image+`", "Path": "/bin/sleep", "Args": ["1000"]}`, "mkdkr", nap); r.Code != 0 {
		t.Fatal(r)
	}
	if r := cl.Run("signal", "KILL", nap); r.Code != 0 {
		t.Fatalf("signal: %+v", r)
	}
	if r := cl.Run("wait", nap); r.Code != 137 {
		t.Fatalf("wait after KILL: %+v", r)
	}

	// Errors: a missing image; a server without -docker.
	start := time.Now()
	if r := cl.RunVia(plain, `{"Image": "circuit-no-such-image:1"}`, "mkdkr", x+"/missing"); r.Code == 0 || !strings.Contains(r.Stderr, "not found on this host") {
		t.Fatalf("missing image: %+v", r)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("a missing image took %v to report", time.Since(start))
	}
	if r := cl.RunVia(plain, `{"Image": "`+image+`"}`, "mkdkr", "/"+plain.ID+"/d"); r.Code == 0 || !strings.Contains(r.Stderr, "-docker") {
		t.Fatalf("mkdkr on a server without -docker: %+v", r)
	}
	if r := cl.Run("ls", x+"/..."); strings.Contains(r.Stdout, "missing") {
		t.Fatalf("a failed mkdkr left %q", r.Stdout)
	}
}
