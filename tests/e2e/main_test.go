// Package e2e runs the built circuit binary as a user would: the seeds'
// command lines against real server processes on loopback, and inside
// network namespaces for multicast.
package e2e

import (
	"testing"

	"github.com/circuit-project/circuit/internal/testsupport/build"
)

func TestMain(m *testing.M) { build.Main(m) }
