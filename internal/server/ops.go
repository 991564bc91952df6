package server

import "github.com/circuit-project/circuit/internal/oplog"

// Ops is the server's operation log, for readers in the same process of its
// tail (the web console, internal/console).
func (s *Server) Ops() *oplog.Log { return s.ops }
