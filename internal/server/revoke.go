package server

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/revocation"
	"github.com/circuit-project/circuit/internal/security"
)

// sharedRevocations is the revocation list as membership spreads it
// (cluster.Shared): every state exchange carries it, and a new entry goes to
// every member at once (Server.Revoke).
type sharedRevocations struct{ s *Server }

func (r sharedRevocations) Snapshot() []byte { return r.s.revoked.Encode() }

func (r sharedRevocations) Merge(b []byte) {
	if _, err := r.s.revoked.Merge(b); err != nil {
		r.s.log.Error("merging the revocation list", "err", err)
	}
}

// revokedReason says when and by whom a credential was revoked.
func revokedReason(e revocation.Entry) string {
	return fmt.Sprintf("credential %s was revoked at %s by %s", e.ID, e.At.UTC().Format(time.RFC3339), e.By)
}

// revocationOf returns the entry that revokes a credential (its own or that
// of a credential it was made under), if any does.
func (s *Server) revocationOf(c *security.Claims) (revocation.Entry, bool) {
	return s.revoked.Revoked(c.Lineage())
}

// onRevoked takes an entry new to this server's list, made here or merged
// from another server: it closes the connections of the credentials it
// revokes, which the server would refuse anyway at their next operation
// (authorize), so that none keeps a stream open.
func (s *Server) onRevoked(e revocation.Entry) {
	s.log.Warn("credential revoked", "id", e.ID, "name", e.Name, "by", e.By)
	var doomed []net.Conn
	s.mu.Lock()
	for c, a := range s.conns {
		if a.claims != nil && slices.Contains(a.claims.Lineage(), e.ID) {
			doomed = append(doomed, c)
		}
	}
	s.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

func toRevocation(e revocation.Entry) *api.Revocation {
	return &api.Revocation{Id: e.ID, Name: e.Name, UntilUnixNano: e.Until.UnixNano(), AtUnixNano: e.At.UnixNano(), By: e.By}
}

func (v *serverService) Revoke(ctx context.Context, req *api.RevokeRequest) (*api.RevokeReply, error) {
	if err := revocation.CheckID(req.GetId()); err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	now := time.Now()
	until := now.Add(security.MaxCredentialLife)
	if n := req.GetUntilUnixNano(); n != 0 {
		if until = time.Unix(0, n); !until.After(now) {
			return nil, fault.Errorf(fault.BadRequest, "credential %s expired at %s: it is refused already", req.GetId(), until.UTC().Format(time.RFC3339))
		}
	}
	e := revocation.Entry{ID: req.GetId(), Name: req.GetName(), Until: until, At: now, By: callerOf(ctx).String()}
	added, err := v.s.revoked.Add(e)
	if err != nil {
		// It is in force here, and is told to the others, but a restart
		// would forget it unless another server tells it again.
		v.s.log.Error("revoking", "id", e.ID, "err", err)
	}
	if !added {
		if old, ok := v.s.revoked.Revoked([]string{e.ID}); ok {
			return &api.RevokeReply{Revocation: toRevocation(old)}, nil
		}
	}
	v.s.cluster.Share(revocation.News(e))
	if err != nil {
		return nil, fault.Errorf(fault.Precondition, "credential %s is revoked in memory and told to every server, but this server could not keep it in -var: %v", e.ID, err)
	}
	return &api.RevokeReply{Added: true, Revocation: toRevocation(e)}, nil
}

func (v *serverService) Revoked(context.Context, *api.RevokedRequest) (*api.RevokedReply, error) {
	var out []*api.Revocation
	for _, e := range v.s.revoked.All() {
		out = append(out, toRevocation(e))
	}
	return &api.RevokedReply{Revocations: out}, nil
}
