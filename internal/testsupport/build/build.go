// Package build builds the programs that tests run: the circuit binary, once
// per test process in each of its two forms, and any other program of the
// module. Only the tests of building itself (tests/packaging, the version's
// -ldflags in internal/cli) run `go build` their own way, as a user would.
//
// The two forms of the circuit binary are Race, built with the race
// detector when the test itself has it, and Static, built without cgo (and
// so without the race detector), which runs on a busybox root file system
// inside a container and is also the one to use where timing is measured:
// a race-instrumented server is several times slower.
package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// CircuitPackage is the import path of the circuit command.
const CircuitPackage = "github.com/circuit-project/circuit/cmd/circuit"

// Timeout bounds one build.
const Timeout = 5 * time.Minute

// Flavour says how a program is built.
type Flavour int

const (
	// Race is the test's own kind of binary: with -race when the test
	// was built with it.
	Race Flavour = iota
	// Static has no cgo and no race detector, and no paths of this
	// machine (-trimpath).
	Static
)

// String names the flavour, as in the built binary's file name.
func (f Flavour) String() string {
	switch f {
	case Race:
		return "race"
	case Static:
		return "static"
	}
	return fmt.Sprintf("Flavour(%d)", int(f))
}

// Args returns the arguments of `go build` for a flavour, before -o and the
// package; race says whether the test has the race detector.
func (f Flavour) Args(race bool) []string {
	args := []string{"build"}
	switch f {
	case Race:
		if race {
			args = append(args, "-race")
		}
	case Static:
		args = append(args, "-trimpath")
	}
	return args
}

// Env returns the environment variables that a flavour adds to the test's
// own.
func (f Flavour) Env() []string {
	if f == Static {
		return []string{"CGO_ENABLED=0"}
	}
	return nil
}

type built struct {
	once sync.Once
	path string
	err  error
}

var (
	mu      sync.Mutex
	circuit = map[Flavour]*built{}

	dirOnce sync.Once
	dir     string
	dirErr  error
)

// Main runs a test binary's tests and then removes the circuit binaries
// built for them. Call it from TestMain of every package that uses Circuit
// (directly or through a cluster package).
func Main(m *testing.M) {
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// Circuit builds the circuit binary in flavour f once per test process and
// returns its path. A failed build fails every test that asks for it.
func Circuit(t testing.TB, f Flavour) string {
	t.Helper()
	path, err := circuitBinary(f)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func circuitBinary(f Flavour) (string, error) {
	mu.Lock()
	b := circuit[f]
	if b == nil {
		b = &built{}
		circuit[f] = b
	}
	mu.Unlock()
	b.once.Do(func() {
		dirOnce.Do(func() { dir, dirErr = os.MkdirTemp("", "circuit-testbin-") })
		if dirErr != nil {
			b.err = dirErr
			return
		}
		b.path = filepath.Join(dir, "circuit-"+f.String())
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		b.err = Go(ctx, b.path, CircuitPackage, f)
	})
	return b.path, b.err
}

// Program builds the program pkg (an import path, or a directory relative
// to the test's, such as ".") in the test's flavour Race, into the test's
// temporary directory under the program's own name, and returns its path.
func Program(t testing.TB, pkg string) string {
	t.Helper()
	return ProgramWith(t, pkg, "")
}

// ProgramWith is Program with -ldflags (none for "").
func ProgramWith(t testing.TB, pkg, ldflags string) string {
	t.Helper()
	name := filepath.Base(pkg)
	if abs, err := filepath.Abs(pkg); err == nil && strings.HasPrefix(pkg, ".") {
		name = filepath.Base(abs)
	}
	bin := filepath.Join(t.TempDir(), name)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := goBuild(ctx, bin, pkg, Race, ldflags); err != nil {
		t.Fatal(err)
	}
	return bin
}

// Go runs `go build` for package pkg in flavour f, writing bin.
func Go(ctx context.Context, bin, pkg string, f Flavour) error {
	return goBuild(ctx, bin, pkg, f, "")
}

func goBuild(ctx context.Context, bin, pkg string, f Flavour, ldflags string) error {
	args := f.Args(raceEnabled)
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	args = append(args, "-o", bin, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), f.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
