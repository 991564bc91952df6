package server

import (
	"context"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/kind"
)

// peeker describes an element of one kind for Anchor.Peek. It is given
// what the tree holds under that kind.
type peeker func(ctx context.Context, s *Server, e anchor.Element) (*api.PeekReply, error)

// peekers are the server's registration of the kinds of element: for each,
// how Anchor.Peek describes one. Each is written beside its kind's
// service; a test checks that every kind of kind.Elements has one.
var peekers = map[kind.Kind]peeker{
	kind.Server: peekServer,
	kind.Proc:   peekProc,
	kind.Chan:   peekChan,
	kind.Join:   peekSubscription,
	kind.Leave:  peekSubscription,
	kind.DNS:    peekDNS,
	kind.Docker: peekDocker,
}

// Peek describes the element at a path in one call: its kind, and its
// state as the kind's own Peek gives it. The element is found once, so
// the state is that of the element the kind names.
func (v *anchorService) Peek(ctx context.Context, req *api.PathRequest) (*api.PeekReply, error) {
	p, err := v.s.localPath(req.GetPath())
	if err != nil {
		return nil, err
	}
	var e anchor.Element = serverElement{}
	if len(p.Elems) > 0 {
		var ok bool
		if e, ok = v.s.tree.Get(p.Elems); !ok {
			return &api.PeekReply{}, nil // as Get: no element, no kind
		}
	}
	peek, ok := peekers[e.Kind()]
	if !ok {
		return nil, fault.Errorf(fault.Remote, "%s holds a %s, which this server cannot describe", p, e.Kind())
	}
	return peek(ctx, v.s, e)
}

// wrongElement is the error of a peeker given an element of another type
// than its kind's, which would be a bug of the server.
func wrongElement(e anchor.Element) error {
	return fault.Errorf(fault.Remote, "an element of kind %s is a %T", e.Kind(), e)
}

func peekServer(_ context.Context, s *Server, _ anchor.Element) (*api.PeekReply, error) {
	return &api.PeekReply{Kind: string(kind.Server), State: &api.PeekReply_Server{Server: s.info()}}, nil
}
