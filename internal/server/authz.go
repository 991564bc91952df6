package server

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/label"
	"github.com/circuit-project/circuit/internal/op"
)

// authorize decides whether who may run the operation name on path (""
// when it names none) on this server. It is where the table of operations
// (package op) is enforced: by the server that executes the operation,
// never by a relay or a client. An operation missing from the table is
// denied to every credential. The key's holder, and anyone on a server
// without a key, may do everything, except what -no-exec refuses to all.
func (s *Server) authorize(who caller, name, path string) error {
	o, known := op.Lookup(name)
	if known && o.Exec && s.cfg.NoExec {
		return s.denied(who, name, path, "this server runs with -no-exec, which refuses commands to everyone")
	}
	c := who.claims
	if c == nil {
		return nil
	}
	if e, ok := s.revocationOf(c); ok {
		return s.denied(who, name, path, revokedReason(e))
	}
	if time.Now().After(c.NotAfter) { // an open connection outlives it
		return s.denied(who, name, path, fmt.Sprintf("credential %s expired at %s", c.ID, c.NotAfter.UTC().Format(time.RFC3339)))
	}
	if !known {
		return s.denied(who, name, path, "the operation is not in the table of operations")
	}
	if role, _ := op.ParseRole(c.Role); role < o.Role {
		return s.denied(who, name, path, "it needs role "+o.Role.String())
	}
	if c.Selector != "" {
		sel, err := label.Parse(c.Selector)
		if err != nil || !sel.Matches(s.cfg.Labels) {
			return s.denied(who, name, path, fmt.Sprintf("server /%s is outside its selector %q", s.id, c.Selector))
		}
	}
	if c.Path != "" && !s.inSubtree(c.Path, name, path) {
		return s.denied(who, name, path, fmt.Sprintf("outside its subtree %s", c.Path))
	}
	return nil
}

// inSubtree tells whether a credential limited to the anchor subtree sub
// (like "/jobs") may run the operation name on path. Operations that name
// no anchor (the cluster's members, a server's stacks) are the server's,
// not an anchor's, and are allowed; copies of files reach past every
// anchor and are not. A listing may start above the subtree: its entries
// are then cut to the subtree (Server.List).
func (s *Server) inSubtree(sub, name, path string) bool {
	switch {
	case name == "Stream.get" || name == "Stream.put" || name == "Stream.puttar":
		return false
	case path == "":
		return true
	}
	p, err := anchor.Parse(path)
	if err != nil || p.Server != s.id {
		return false // refused as a bad path where it runs, or not here
	}
	scope := anchor.Split(sub)
	if name == "Server.List" && len(p.Elems) < len(scope) {
		return below(scope, p.Elems) // a listing from above the subtree
	}
	return below(p.Elems, scope)
}

// below tells whether the anchor elems is scope or below it.
func below(elems, scope []string) bool {
	return len(elems) >= len(scope) && slices.Equal(elems[:len(scope)], scope)
}

// inScope tells whether who may see the anchor path (for listings): always
// without a subtree.
func (s *Server) inScope(who caller, path string) bool {
	if who.claims == nil || who.claims.Path == "" {
		return true
	}
	p, err := anchor.Parse(path)
	if err != nil {
		return false
	}
	return below(p.Elems, anchor.Split(who.claims.Path))
}

// denied is the refusal every client reads the same way (client's
// PermissionError): "permission denied: NAME (role R) may not OP on PATH:
// REASON".
func (s *Server) denied(who caller, name, path, reason string) error {
	role := "admin" // the key's holder (or anyone, unkeyed): only -no-exec refuses
	if who.claims != nil {
		role = who.claims.Role
	}
	if path == "" {
		path = "/" + s.id.String()
	}
	return fault.Errorf(fault.Denied, "permission denied: %s (role %s) may not %s on %s: %s", who.name(), role, name, path, reason)
}

// scopedStream checks, for a credential limited by its subtree, the path
// that a streaming RPC's first message names (Chan.Send, Chan.Recv,
// Binary.Upload), which its interceptor could not see.
type scopedStream struct {
	grpc.ServerStream
	s       *Server
	who     caller
	name    string
	checked bool
}

func (ss *scopedStream) RecvMsg(m any) error {
	if err := ss.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if !ss.checked {
		ss.checked = true
		if err := ss.s.authorize(ss.who, ss.name, reqPath(m)); err != nil {
			return err
		}
	}
	return nil
}

// authorizeStream is streamOp's check: the role and selector at once, the
// subtree on the first message.
func (s *Server) authorizeStream(ctx context.Context, ss grpc.ServerStream, name string) (grpc.ServerStream, error) {
	who := callerOf(ctx)
	if err := s.authorize(who, name, ""); err != nil {
		return ss, err
	}
	if who.claims == nil || who.claims.Path == "" {
		return ss, nil
	}
	return &scopedStream{ServerStream: ss, s: s, who: who, name: name}, nil
}
