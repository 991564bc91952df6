package client

import (
	"context"
	"time"

	"github.com/circuit-project/circuit/internal/api"
)

// Revocation is one entry of the cluster's list of revoked credentials.
type Revocation struct {
	ID    string    // the credential's ID
	Name  string    // its name, when the revoker gave it
	Until time.Time // when the credential expires: the entry is kept until then
	At    time.Time // when it was revoked
	By    string    // who revoked it: "key", or a credential's name and ID
}

func fromRevocation(r *api.Revocation) Revocation {
	return Revocation{ID: r.GetId(), Name: r.GetName(), Until: time.Unix(0, r.GetUntilUnixNano()), At: time.Unix(0, r.GetAtUnixNano()), By: r.GetBy()}
}

// Revoke revokes the credential with the given ID (and every credential
// made under it, such as its processes') on every server: the dial-in
// server keeps the entry and tells every member, which refuse the
// credential from then on. name is recorded with it; until, when known, is
// the credential's expiry, after which the entry is dropped (zero keeps it
// as long as any credential lasts). added is false when it was revoked
// already; r is the entry in force. It needs role admin.
func (c *Client) Revoke(ctx context.Context, id, name string, until time.Time) (r Revocation, added bool, err error) {
	sc, err := c.conn(0)
	if err != nil {
		return Revocation{}, false, err
	}
	req := &api.RevokeRequest{Id: id, Name: name}
	if !until.IsZero() {
		req.UntilUnixNano = until.UnixNano()
	}
	rep, err := sc.api.Revoke(ctx, req)
	if err != nil {
		return Revocation{}, false, c.wrap(ctx, sc, err)
	}
	return fromRevocation(rep.GetRevocation()), rep.GetAdded(), nil
}

// Revocations lists the revoked credentials as the server with the given ID
// ("" for the dial-in server) knows them, newest first.
func (c *Client) Revocations(ctx context.Context, id string) ([]Revocation, error) {
	sc, err := c.conn(0)
	if id != "" {
		sc, err = c.server(id)
	}
	if err != nil {
		return nil, err
	}
	rep, err := sc.api.Revoked(ctx, &api.RevokedRequest{})
	if err != nil {
		return nil, c.wrap(ctx, sc, err)
	}
	out := make([]Revocation, 0, len(rep.GetRevocations()))
	for _, r := range rep.GetRevocations() {
		out = append(out, fromRevocation(r))
	}
	return out, nil
}
