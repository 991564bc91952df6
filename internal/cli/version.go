package cli

import (
	"fmt"
	"runtime"

	"github.com/circuit-project/circuit/internal/version"
)

// versionInfo is what circuit version -json prints. The field names are
// stable (docs/CLI.md): scripts and packaging tests read them.
type versionInfo struct {
	Version, Commit, Go, OS, Arch string
}

func currentVersion() versionInfo {
	return versionInfo{
		Version: version.String(),
		Commit:  version.CommitString(),
		Go:      version.Go(),
		OS:      runtime.GOOS,
		Arch:    runtime.GOARCH,
	}
}

func versionCmd() *command {
	return &command{
		name:  "version",
		short: "print the version of this binary, the commit it was built from, and its Go version",
		long: `The version and commit are set when the binary is built (make build passes
git describe and git rev-parse HEAD with -ldflags -X); a binary built
without them reports what the Go toolchain recorded: the module version for
go install PKG@VERSION, the commit for a build inside a git checkout, and
otherwise "devel" and "unknown".

Example:
  $ circuit version
  circuit v1.2.0 (commit 91243ed0c2..., go1.26.8, linux/amd64)`,
		json: `One JSON object: Version, Commit, Go (the Go release it was built with),
OS and Arch (GOOS and GOARCH).`,
		run: runVersion,
	}
}

func runVersion(env *Env, inv *invocation) error {
	if len(inv.args) != 0 {
		return usagef("version takes no arguments, got %q", inv.args)
	}
	v := currentVersion()
	if env.jsonOut {
		return printJSON(env, v)
	}
	_, err := fmt.Fprintf(env.Stdout, "circuit %s (commit %s, %s, %s/%s)\n", v.Version, v.Commit, v.Go, v.OS, v.Arch)
	return err
}
