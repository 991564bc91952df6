// Package version owns the version string of the binary, set at build time
// with -ldflags "-X github.com/circuit-project/circuit/internal/version.Version=v1.2.3"
// and otherwise taken from the module build information.
package version

import (
	"runtime"
	"runtime/debug"
)

// Version is set by the linker for release builds.
var Version = ""

// Commit is set by the linker for release builds.
var Commit = ""

// String returns the version, falling back to what the Go toolchain recorded.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// CommitString returns the commit the binary was built from, if known.
func CommitString() string {
	if Commit != "" {
		return Commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// Go returns the Go version the binary was built with.
func Go() string { return runtime.Version() }
