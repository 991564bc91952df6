package client

import (
	"context"

	"github.com/circuit-project/circuit/internal/api"
)

// NameserverStat is what peek shows of a DNS element: its address and its
// records, by name.
type NameserverStat struct {
	Address string
	Records map[string][]string
}

// Nameserver is a DNS element in the seeds' style.
type Nameserver interface {
	// Set adds a resource record in zone-file syntax, e.g.
	// "miek.nl. 3600 IN MX 10 mx.miek.nl.".
	Set(rr string) error
	// Unset removes every record of a name.
	Unset(name string) error
	// Peek returns the address and the records.
	Peek() NameserverStat
	// Scrub stops the nameserver and removes it.
	Scrub()
}

// NameserverHandle is a DNS element, in the context style.
type NameserverHandle struct {
	c    *Client
	path string
}

// NameserverAt returns a handle on the DNS element at path.
func (c *Client) NameserverAt(path string) *NameserverHandle {
	return &NameserverHandle{c: c, path: path}
}

// MakeNameserverAt starts a DNS server at path, listening on addr
// (host:port), or on a free port of its server's address when addr is "".
func (c *Client) MakeNameserverAt(ctx context.Context, path, addr string) (*NameserverHandle, error) {
	sc, err := c.serverOf(path)
	if err != nil {
		return nil, err
	}
	if _, err := api.NewNameserverClient(sc.cc).Make(ctx, &api.MakeNameserverRequest{Path: path, Addr: addr}); err != nil {
		return nil, c.wrap(ctx, sc, err)
	}
	return c.NameserverAt(path), nil
}

func fromNameserverStat(st *api.NameserverStat) NameserverStat {
	out := NameserverStat{Address: st.GetAddress(), Records: map[string][]string{}}
	for _, rs := range st.GetRecords() {
		out.Records[rs.GetName()] = rs.GetRecords()
	}
	return out
}

func nameserverState(r *api.PeekReply) any {
	if st := r.GetDns(); st != nil {
		return fromNameserverStat(st)
	}
	return nil
}

func nameserverHandle(c *Client, path string) any { return c.NameserverAt(path).Nameserver() }

func (h *NameserverHandle) call(ctx context.Context, f func(api.NameserverClient) (*api.NameserverStat, error)) (NameserverStat, error) {
	sc, err := h.c.serverOf(h.path)
	if err != nil {
		return NameserverStat{}, err
	}
	st, err := f(api.NewNameserverClient(sc.cc))
	if err != nil {
		return NameserverStat{}, h.c.wrap(ctx, sc, err)
	}
	return fromNameserverStat(st), nil
}

// Set adds a resource record.
func (h *NameserverHandle) Set(ctx context.Context, rr string) error {
	_, err := h.call(ctx, func(cl api.NameserverClient) (*api.NameserverStat, error) {
		return cl.Set(ctx, &api.SetRecordRequest{Path: h.path, Record: rr})
	})
	return err
}

// Unset removes every record of name.
func (h *NameserverHandle) Unset(ctx context.Context, name string) error {
	_, err := h.call(ctx, func(cl api.NameserverClient) (*api.NameserverStat, error) {
		return cl.Unset(ctx, &api.UnsetRecordRequest{Path: h.path, Name: name})
	})
	return err
}

// Peek returns the address and records.
func (h *NameserverHandle) Peek(ctx context.Context) (NameserverStat, error) {
	return h.call(ctx, func(cl api.NameserverClient) (*api.NameserverStat, error) {
		return cl.Peek(ctx, &api.PathRequest{Path: h.path})
	})
}

type seedNameserver struct{ h *NameserverHandle }

// Nameserver returns the seeds'-style view.
func (h *NameserverHandle) Nameserver() Nameserver { return seedNameserver{h} }

func (n seedNameserver) Set(rr string) error {
	err := n.h.Set(context.Background(), rr)
	if lost(err) {
		panic(err)
	}
	return err
}

func (n seedNameserver) Unset(name string) error {
	err := n.h.Unset(context.Background(), name)
	if lost(err) {
		panic(err)
	}
	return err
}

func (n seedNameserver) Peek() NameserverStat {
	st, err := n.h.Peek(context.Background())
	if lost(err) {
		panic(err)
	}
	return st
}

func (n seedNameserver) Scrub() {
	if err := n.h.c.ScrubAt(context.Background(), n.h.path); lost(err) {
		panic(err)
	}
}
