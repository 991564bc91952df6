package client

import (
	"context"

	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/kind"
)

// ElementState is what PeekAt found at an anchor.
type ElementState struct {
	// Kind is the kind of the element, as KindAt names it: "" for an
	// anchor holding no element.
	Kind string
	// State is the element's state, by kind: ServerInfo for a server,
	// ProcStat, ChanStat, SubscriptionStat for @join and @leave,
	// NameserverStat, and for a container its inspect document, a
	// json.RawMessage. It is nil when Kind is "", and for a kind this
	// client does not know (one a newer server has).
	State any
}

// PeekAt describes the element at path, whatever its kind, in one call to
// the server that hosts it: its kind and its state, as the kind's own Peek
// would give it.
func (c *Client) PeekAt(ctx context.Context, path string) (ElementState, error) {
	sc, err := c.serverOf(path)
	if err != nil {
		return ElementState{}, err
	}
	r, err := api.NewAnchorClient(sc.cc).Peek(ctx, &api.PathRequest{Path: path})
	if err != nil {
		return ElementState{}, c.wrap(ctx, sc, err)
	}
	out := ElementState{Kind: r.GetKind()}
	if k, ok := kinds[kind.Kind(out.Kind)]; ok {
		out.State = k.state(r)
	}
	return out, nil
}

// elementKind is what the client makes of one kind of element.
type elementKind struct {
	// state is the element's state in a Peek reply, nil when the reply
	// carries none of this kind.
	state func(r *api.PeekReply) any
	// handle is the seeds' handle on the element at path, which
	// Anchor.Get returns.
	handle func(c *Client, path string) any
}

// kinds are the client's registration of the kinds of element: for each,
// its state and its handle. Their functions are in the kind's own file; a
// test checks that every kind of kind.Elements has an entry.
var kinds = map[kind.Kind]elementKind{
	kind.Server: {serverState, serverHandle},
	kind.Proc:   {procState, procHandle},
	kind.Chan:   {chanState, chanHandle},
	kind.Join:   {subscriptionState, subscriptionHandle},
	kind.Leave:  {subscriptionState, subscriptionHandle},
	kind.DNS:    {nameserverState, nameserverHandle},
	kind.Docker: {containerState, containerHandle},
}
