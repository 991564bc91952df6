package hosts

import (
	"testing"

	"github.com/circuit-project/circuit/internal/testsupport/build"
)

// TestMain removes the static circuit binary that the hosts run.
func TestMain(m *testing.M) { build.Main(m) }
