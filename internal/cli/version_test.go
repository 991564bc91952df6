package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/circuit-project/circuit/internal/cli"
	"github.com/circuit-project/circuit/internal/version"
)

type versionOut struct {
	Version string
	Commit  string
	Go      string
	OS      string
	Arch    string
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	env := &cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	code = cli.Main(env, args)
	return code, out.String(), errOut.String()
}

func decodeVersionOut(t *testing.T, out string) versionOut {
	t.Helper()
	var v versionOut
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("version -json printed %q: %v", out, err)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("version -json printed %q, want one line", out)
	}
	return v
}

// TestVersionCommand runs circuit version in this process, with the
// version and commit as the linker would set them.
func TestVersionCommand(t *testing.T) {
	oldV, oldC := version.Version, version.Commit
	version.Version, version.Commit = "v1.2.3-intest", "0123456789abcdef"
	defer func() { version.Version, version.Commit = oldV, oldC }()

	platform := runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		args       []string
		code       int
		stdout     string
		stderrHave string
	}{
		{[]string{"version"}, cli.ExitOK, "circuit v1.2.3-intest (commit 0123456789abcdef, " + runtime.Version() + ", " + platform + ")\n", ""},
		{[]string{"version", "extra"}, cli.ExitUsage, "", `circuit version takes no arguments, got ["extra"]`},
		{[]string{"version", "-d", "127.0.0.1:1"}, cli.ExitUsage, "", "flag provided but not defined: -d"},
		{[]string{"version", "-jsn"}, cli.ExitUsage, "", "flag provided but not defined: -jsn"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", stdout, tc.stdout)
			}
			if !strings.Contains(stderr, tc.stderrHave) || (tc.stderrHave == "") != (stderr == "") {
				t.Errorf("stderr %q, want it to hold %q", stderr, tc.stderrHave)
			}
		})
	}

	code, stdout, stderr := runCLI("version", "-json")
	if code != cli.ExitOK || stderr != "" {
		t.Fatalf("version -json: exit %d, stderr %q", code, stderr)
	}
	got := decodeVersionOut(t, stdout)
	want := versionOut{Version: "v1.2.3-intest", Commit: "0123456789abcdef", Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if got != want {
		t.Errorf("version -json: %+v, want %+v", got, want)
	}

	// circuit help lists it, and help version documents -json.
	if _, out, _ := runCLI("help"); !strings.Contains(out, "\n  version ") {
		t.Errorf("circuit help does not list version:\n%s", out)
	}
	if code, out, _ := runCLI("help", "version"); code != cli.ExitOK || !strings.Contains(out, "-json") {
		t.Errorf("circuit help version: exit %d, %q", code, out)
	}
}

// TestVersionFallback: with nothing set by the linker, a test binary (which
// carries no VCS information) reports "devel" and "unknown".
func TestVersionFallback(t *testing.T) {
	oldV, oldC := version.Version, version.Commit
	version.Version, version.Commit = "", ""
	defer func() { version.Version, version.Commit = oldV, oldC }()
	code, stdout, _ := runCLI("version", "-json")
	if code != cli.ExitOK {
		t.Fatalf("exit %d", code)
	}
	got := decodeVersionOut(t, stdout)
	if got.Version != version.String() || got.Commit != version.CommitString() || got.Go != runtime.Version() {
		t.Errorf("version -json: %+v, want version %q, commit %q", got, version.String(), version.CommitString())
	}
}

// TestVersionLdflags builds the binary with the version and commit set by
// -ldflags -X, as make build does, and runs it.
func TestVersionLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const pkg = "github.com/circuit-project/circuit/internal/version"
	bin := filepath.Join(t.TempDir(), "circuit")
	ldflags := fmt.Sprintf("-X %s.Version=v9.9.9-test -X %s.Commit=abc123", pkg, pkg)
	if out, err := exec.CommandContext(ctx, "go", "build", "-ldflags", ldflags, "-o", bin, "github.com/circuit-project/circuit/cmd/circuit").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	goVer, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatalf("go env GOVERSION: %v", err)
	}
	plain, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		t.Fatalf("circuit version: %v", err)
	}
	wantPlain := fmt.Sprintf("circuit v9.9.9-test (commit abc123, %s, %s/%s)\n", strings.TrimSpace(string(goVer)), runtime.GOOS, runtime.GOARCH)
	if string(plain) != wantPlain {
		t.Errorf("circuit version printed %q, want %q", plain, wantPlain)
	}
	js, err := exec.CommandContext(ctx, bin, "version", "-json").Output()
	if err != nil {
		t.Fatalf("circuit version -json: %v", err)
	}
	got := decodeVersionOut(t, string(js))
	want := versionOut{Version: "v9.9.9-test", Commit: "abc123", Go: strings.TrimSpace(string(goVer)), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if got != want {
		t.Errorf("version -json: %+v, want %+v", got, want)
	}
}
