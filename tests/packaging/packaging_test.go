// Package packaging tests the ways circuit is installed, as README.md
// ("Installing") shows them: go install from this checkout, the systemd
// unit of contrib/systemd (checked by systemd-analyze, and its command line
// run with the example environment file), and the FROM scratch image of the
// Dockerfile, which the test builds, runs as two servers on a Docker network
// of their own that find each other, and removes again.
package packaging

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/testsupport"
)

const versionPkg = "github.com/circuit-project/circuit/internal/version"

// versionJSON is what circuit version -json prints.
type versionJSON struct {
	Version string
	Commit  string
	Go      string
	OS      string
	Arch    string
}

// repoRoot is the checkout this test runs in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the checkout's root: %v", err)
	}
	return root
}

// run runs a command in dir with extra environment variables and stdin,
// and returns its standard output; its error includes standard error.
func run(ctx context.Context, dir string, env []string, stdin string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// must is run, failing the test on an error.
func must(t *testing.T, ctx context.Context, dir string, env []string, stdin, name string, args ...string) string {
	t.Helper()
	out, err := run(ctx, dir, env, stdin, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// goVersion is the release of the Go toolchain that builds the binaries.
func goVersion(t *testing.T, ctx context.Context) string {
	t.Helper()
	return strings.TrimSpace(must(t, ctx, "", nil, "", "go", "env", "GOVERSION"))
}

func decodeVersion(t *testing.T, out string) versionJSON {
	t.Helper()
	var v versionJSON
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("circuit version -json printed %q: %v", out, err)
	}
	return v
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// poll waits until f returns nil, and fails the test with what and f's last
// error after limit.
func poll(t *testing.T, limit time.Duration, what string, f func() error) {
	t.Helper()
	if err := testsupport.Wait(limit, f); err != nil {
		t.Fatalf("%s: not within %v", what, err)
	}
}

// TestGoInstall installs the binary as README.md says, from this checkout,
// into a directory of its own, and runs it.
func TestGoInstall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := repoRoot(t)
	gobin := t.TempDir()
	env := []string{"GOBIN=" + gobin}
	// In a git checkout the toolchain records the commit, unless told not to
	// (-buildvcs=false in GOFLAGS); ask for it, to check it is reported.
	head, gitErr := run(ctx, root, nil, "", "git", "rev-parse", "HEAD")
	head = strings.TrimSpace(head)
	if gitErr == nil {
		env = append(env, "GOFLAGS=-buildvcs=true")
	}
	must(t, ctx, root, env, "", "go", "install", "./cmd/circuit")
	bin := filepath.Join(gobin, "circuit")
	v := decodeVersion(t, must(t, ctx, "", nil, "", bin, "version", "-json"))
	if want := goVersion(t, ctx); v.Go != want {
		t.Errorf("go: %q, want %q", v.Go, want)
	}
	if v.OS != runtime.GOOS || v.Arch != runtime.GOARCH {
		t.Errorf("os/arch: %s/%s, want %s/%s", v.OS, v.Arch, runtime.GOOS, runtime.GOARCH)
	}
	if v.Version == "" {
		t.Error("empty version")
	}
	if gitErr == nil && v.Commit != head {
		t.Errorf("commit: %q, want HEAD %q", v.Commit, head)
	}
	plain := must(t, ctx, "", nil, "", bin, "version")
	if want := fmt.Sprintf("circuit %s (commit %s, %s, %s/%s)\n", v.Version, v.Commit, v.Go, v.OS, v.Arch); plain != want {
		t.Errorf("circuit version printed %q, want %q", plain, want)
	}
	t.Logf("installed: %s", strings.TrimSpace(plain))
}

// dockerWorks skips the test without a Docker engine, or fails it when
// CIRCUIT_REQUIRE_DOCKER=1, as the other container tests do.
func dockerWorks(t *testing.T, ctx context.Context) {
	t.Helper()
	_, err := exec.LookPath("docker")
	if err == nil {
		_, err = run(ctx, "", nil, "", "docker", "version", "--format", "{{.Server.Version}}")
	}
	if err != nil {
		if os.Getenv("CIRCUIT_REQUIRE_DOCKER") == "1" {
			t.Fatalf("CIRCUIT_REQUIRE_DOCKER=1, but the docker command does not work: %v", err)
		}
		t.Skipf("no working docker command (set CIRCUIT_REQUIRE_DOCKER=1 to fail instead): %v", err)
	}
}

// buildContext lays out what make image does: a static binary with the
// version and commit given, and the root file system, under bin/image, with
// the checkout's .dockerignore. It returns the context directory.
func buildContext(t *testing.T, ctx context.Context, root, ver, commit string) string {
	t.Helper()
	dir := t.TempDir()
	image := filepath.Join(dir, "bin", "image")
	if err := os.MkdirAll(filepath.Join(image, "rootfs", "var", "lib", "circuit"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(image, "rootfs", "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o777|os.ModeSticky); err != nil { // what install -d -m 1777 makes
		t.Fatal(err)
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), ignore, 0o644); err != nil {
		t.Fatal(err)
	}
	// Something the image must not receive: .dockerignore keeps it out of
	// the context.
	if err := os.WriteFile(filepath.Join(dir, "not-in-context"), bytes.Repeat([]byte("x"), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ldflags := fmt.Sprintf("-X %s.Version=%s -X %s.Commit=%s", versionPkg, ver, versionPkg, commit)
	must(t, ctx, root, []string{"CGO_ENABLED=0"}, "", "go", "build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(image, "circuit"), "./cmd/circuit")
	return dir
}

// serverURL waits for the URL a server container prints on its standard
// output.
func serverURL(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	var url string
	poll(t, 30*time.Second, name+" prints its URL", func() error {
		cmd := exec.CommandContext(ctx, "docker", "logs", name)
		out, err := cmd.Output() // the server's log is on stderr
		if err != nil {
			return fmt.Errorf("docker logs %s: %w", name, err)
		}
		line, _, _ := strings.Cut(string(out), "\n")
		if !strings.HasPrefix(line, "circuit://") {
			return fmt.Errorf("stdout so far: %q", out)
		}
		url = line
		return nil
	})
	return url
}

// TestDockerImage builds the image of the Dockerfile, checks the version
// built into it, and runs two keyed servers in containers that find each
// other by multicast discovery with no other configuration.
func TestDockerImage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dockerWorks(t, ctx)
	root := repoRoot(t)
	suffix := randomHex(t, 4)
	ver, commit := "v9.9.9-packaging-"+suffix, randomHex(t, 20)
	dir := buildContext(t, ctx, root, ver, commit)

	image := "circuit-packaging-test:" + suffix
	t.Cleanup(func() {
		if _, err := run(context.Background(), "", nil, "", "docker", "rmi", "-f", image); err != nil {
			t.Errorf("removing the image: %v", err)
		}
	})
	must(t, ctx, "", nil, "", "docker", "build", "-f", filepath.Join(root, "Dockerfile"), "-t", image, dir)

	// The image holds the binary and the directories, and nothing else
	// (docker export also lists what the engine adds to every container).
	created := strings.TrimSpace(must(t, ctx, "", nil, "", "docker", "create", image))
	listing, err := run(ctx, "", nil, "", "sh", "-c", "docker export "+created+" | tar -tvf -")
	must(t, ctx, "", nil, "", "docker", "rm", created)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-rwxr-xr-x root/root ", " circuit\n", "drwxrwxrwt root/root ", " tmp/\n", " var/lib/circuit/\n"} {
		if !strings.Contains(listing, want) {
			t.Errorf("the image's files lack %q:\n%s", want, listing)
		}
	}
	if strings.Contains(listing, "not-in-context") || strings.Contains(listing, " bin/") {
		t.Errorf("the image holds more than the Dockerfile copies:\n%s", listing)
	}

	// (b) The version and commit given to the linker.
	v := decodeVersion(t, must(t, ctx, "", nil, "", "docker", "run", "--rm", image, "version", "-json"))
	want := versionJSON{Version: ver, Commit: commit, Go: goVersion(t, ctx), OS: "linux", Arch: runtime.GOARCH}
	if v != want {
		t.Errorf("version in the image: %+v, want %+v", v, want)
	}
	if out := must(t, ctx, "", nil, "", "docker", "run", "--rm", image, "version"); !strings.HasPrefix(out, "circuit "+ver+" (commit "+commit+", ") {
		t.Errorf("circuit version in the image printed %q", out)
	}

	// (c) Two servers, each with the image's own command, the key mounted,
	// and a discovery group, on a network of their own.
	keyFile := filepath.Join(t.TempDir(), "hmac")
	key := must(t, ctx, "", nil, "", filepath.Join(dir, "bin", "image", "circuit"), "keygen")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	// Without a key, the image's server refuses to start, saying how to
	// make one.
	if out, err := run(ctx, "", nil, "", "docker", "run", "--rm", image); err == nil || !strings.Contains(out+err.Error(), "circuit keygen") {
		t.Errorf("the image without a key: %v %s", err, out)
	}
	network := "circuit-packaging-" + suffix
	must(t, ctx, "", nil, "", "docker", "network", "create", network)
	t.Cleanup(func() {
		if _, err := run(context.Background(), "", nil, "", "docker", "network", "rm", network); err != nil {
			t.Errorf("removing the network: %v", err)
		}
	})
	var discoverPort int
	fmt.Sscanf(suffix[:4], "%x", &discoverPort)
	discover := fmt.Sprintf("228.8.8.8:%d", 20000+discoverPort%20000)
	names := []string{"circuit-packaging-a-" + suffix, "circuit-packaging-b-" + suffix}
	ids := make([]string, len(names))
	urls := make([]string, len(names))
	for i, name := range names {
		t.Cleanup(func() {
			if _, err := run(context.Background(), "", nil, "", "docker", "rm", "-f", name); err != nil {
				t.Errorf("removing container %s: %v", name, err)
			}
		})
		must(t, ctx, "", nil, "", "docker", "run", "-d", "--name", name, "--network", network,
			"-v", keyFile+":/etc/circuit/hmac:ro", "-e", "CIRCUIT_HMAC=/etc/circuit/hmac", "-e", "CIRCUIT_DISCOVER="+discover, image)
		urls[i] = serverURL(t, ctx, name)
		ids[i] = "/" + urls[i][strings.LastIndex(urls[i], "/")+1:]
	}
	a, b := names[0], names[1]
	wantMembers := slices.Sorted(slices.Values(ids))
	members := func(container string, args ...string) func() error {
		return func() error {
			out, err := run(ctx, "", nil, "", "docker", append([]string{"exec", container, "/circuit", "ls"}, append(args, "/")...)...)
			if err != nil {
				return err
			}
			if got := slices.Sorted(slices.Values(strings.Fields(out))); !slices.Equal(got, wantMembers) {
				return fmt.Errorf("ls / lists %q, want %q", got, wantMembers)
			}
			return nil
		}
	}
	// The tool inside each container finds a server by discovery too, as
	// CIRCUIT_DISCOVER and CIRCUIT_HMAC are in the containers' environment.
	poll(t, 30*time.Second, "the two servers find each other", members(a))
	poll(t, 10*time.Second, "the cluster as seen from b, dialling a", members(b, "-d", urls[0]))

	// The key is in force: without it, a is refused (exit 4).
	out, err := run(ctx, "", nil, "", "docker", "exec", "-e", "CIRCUIT_HMAC=", a, "/circuit", "ls", "-d", urls[0], "/")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 4 || !strings.Contains(err.Error(), "requires the cluster key") {
		t.Errorf("ls without the key: %q, %v; want exit 4, refused for want of the key", out, err)
	}

	// A process element on b, started from a: the only program in the
	// image is circuit itself.
	proc := ids[1] + "/packaging/version"
	must(t, ctx, "", nil, `{"Path": "/circuit", "Args": ["version"]}`, "docker", "exec", "-i", a, "/circuit", "mkproc", proc)
	if out := must(t, ctx, "", nil, "", "docker", "exec", a, "/circuit", "stdout", proc); !strings.HasPrefix(out, "circuit "+ver+" ") {
		t.Errorf("the process on b printed %q", out)
	}
	must(t, ctx, "", nil, "", "docker", "exec", a, "/circuit", "wait", proc)
	must(t, ctx, "", nil, "", "docker", "exec", a, "/circuit", "scrub", proc)

	// docker stop sends SIGTERM to the server, PID 1: it leaves the cluster
	// and exits 0, and a drops it at once.
	must(t, ctx, "", nil, "", "docker", "stop", "-t", "10", b)
	if code := strings.TrimSpace(must(t, ctx, "", nil, "", "docker", "inspect", "-f", "{{.State.ExitCode}}", b)); code != "0" {
		t.Errorf("b exited with %s after docker stop, want 0", code)
	}
	wantMembers = ids[:1]
	poll(t, 5*time.Second, "a drops b", members(a))
}
