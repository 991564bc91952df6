package build

import (
	"context"
	"debug/elf"
	"encoding/json"
	"os/exec"
	"runtime"
	"slices"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// TestCircuit builds the circuit binary in both flavours, runs each one's
// `version -json`, and checks that a second call returns the same binary
// and that the static one has no dynamic loader.
func TestCircuit(t *testing.T) {
	for _, f := range []Flavour{Race, Static} {
		t.Run(f.String(), func(t *testing.T) {
			bin := Circuit(t, f)
			if again := Circuit(t, f); again != bin {
				t.Errorf("second Circuit(%v) = %s, want the first build %s", f, again, bin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "version", "-json").Output()
			if err != nil {
				t.Fatalf("%s version -json: %v", bin, err)
			}
			var v struct{ Version, Go, OS, Arch string }
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("version -json printed %q: %v", out, err)
			}
			if v.Version == "" || v.OS != runtime.GOOS || v.Arch != runtime.GOARCH {
				t.Errorf("version -json = %+v, want a version and %s/%s", v, runtime.GOOS, runtime.GOARCH)
			}
			ef, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			dynamic := slices.ContainsFunc(ef.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
			if f == Static && dynamic {
				t.Errorf("the static binary %s names a dynamic loader", bin)
			}
			if f == Race && raceEnabled && !dynamic {
				t.Errorf("the race binary %s has no dynamic loader: was it built with -race?", bin)
			}
		})
	}
}

// TestFlavourArgs checks the go build arguments and environment of each
// flavour, with and without the race detector in the test.
func TestFlavourArgs(t *testing.T) {
	for _, tc := range []struct {
		f    Flavour
		race bool
		args []string
		env  []string
	}{
		{Race, false, []string{"build"}, nil},
		{Race, true, []string{"build", "-race"}, nil},
		{Static, false, []string{"build", "-trimpath"}, []string{"CGO_ENABLED=0"}},
		{Static, true, []string{"build", "-trimpath"}, []string{"CGO_ENABLED=0"}},
	} {
		if got := tc.f.Args(tc.race); !slices.Equal(got, tc.args) {
			t.Errorf("%v.Args(%v) = %q, want %q", tc.f, tc.race, got, tc.args)
		}
		if got := tc.f.Env(); !slices.Equal(got, tc.env) {
			t.Errorf("%v.Env() = %q, want %q", tc.f, got, tc.env)
		}
	}
	if s := Flavour(7).String(); s != "Flavour(7)" {
		t.Errorf("Flavour(7).String() = %q", s)
	}
}
