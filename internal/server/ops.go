package server

import (
	"fmt"
	"time"

	"github.com/circuit-project/circuit/internal/oplog"
	"github.com/circuit-project/circuit/internal/security"
)

// Ops is the server's operation log, for readers in the same process of its
// tail (the web console, internal/console).
func (s *Server) Ops() *oplog.Log { return s.ops }

// Ring is the server's keyring (nil without a key), for the web console,
// which checks credentials' console tokens against it.
func (s *Server) Ring() *security.Ring { return s.ring }

// Admit refuses a credential that this server would refuse: revoked (it,
// or one it was made under) or expired.
func (s *Server) Admit(c security.Claims) error {
	if e, ok := s.revocationOf(&c); ok {
		return fmt.Errorf("%s", revokedReason(e))
	}
	if time.Now().After(c.NotAfter) {
		return fmt.Errorf("credential %s expired at %s", c.ID, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
