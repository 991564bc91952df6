package server

import (
	"context"
	"errors"
	"net"
	"slices"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/element/nameserver"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/kind"
)

type dnsService struct {
	api.UnimplementedNameserverServer
	s *Server
}

func toNameserverStat(ns *nameserver.Nameserver) *api.NameserverStat {
	recs := ns.Records()
	names := make([]string, 0, len(recs))
	for n := range recs {
		names = append(names, n)
	}
	slices.Sort(names)
	out := &api.NameserverStat{Address: ns.Addr()}
	for _, n := range names {
		out.Records = append(out.Records, &api.RecordSet{Name: n, Records: recs[n]})
	}
	return out
}

func (s *Server) nameserverAt(raw string) (*nameserver.Nameserver, error) {
	p, e, err := s.element(raw)
	if err != nil {
		return nil, err
	}
	ns, ok := e.(*nameserver.Nameserver)
	if !ok {
		return nil, fault.Errorf(fault.BadRequest, "%s holds a %s, not a dns element", p, e.Kind())
	}
	return ns, nil
}

func (v *dnsService) Make(_ context.Context, req *api.MakeNameserverRequest) (*api.NameserverStat, error) {
	s := v.s
	p, err := s.localPath(req.GetPath())
	if err != nil {
		return nil, err
	}
	if len(p.Elems) == 0 || p.Recursive {
		return nil, fault.Errorf(fault.BadRequest, "a nameserver needs an anchor below a server, like /%s/dns, not %s", s.id, p)
	}
	addr := req.GetAddr()
	if addr == "" {
		host, _, _ := net.SplitHostPort(s.url.Addr)
		addr = net.JoinHostPort(host, "0")
	}
	release, err := s.tree.Reserve(p.Elems, kind.DNS)
	if err != nil {
		if anchor.IsOccupied(err) {
			return nil, fault.New(fault.Exists, err.Error())
		}
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	ns, err := nameserver.Start(addr)
	if err != nil {
		release(nil)
		return nil, fault.New(fault.Remote, err.Error())
	}
	if err := release(ns); err != nil {
		ns.Scrub()
		return nil, fault.New(fault.Remote, err.Error())
	}
	return toNameserverStat(ns), nil
}

func (v *dnsService) Set(_ context.Context, req *api.SetRecordRequest) (*api.NameserverStat, error) {
	ns, err := v.s.nameserverAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	if err := ns.Set(req.GetRecord()); err != nil {
		if errors.Is(err, nameserver.ErrBadRecord) {
			return nil, fault.New(fault.BadRequest, err.Error())
		}
		return nil, fault.New(fault.Remote, err.Error())
	}
	return toNameserverStat(ns), nil
}

func (v *dnsService) Unset(_ context.Context, req *api.UnsetRecordRequest) (*api.NameserverStat, error) {
	ns, err := v.s.nameserverAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	if err := ns.Unset(req.GetName()); err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	return toNameserverStat(ns), nil
}

func (v *dnsService) Peek(_ context.Context, req *api.PathRequest) (*api.NameserverStat, error) {
	ns, err := v.s.nameserverAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	return toNameserverStat(ns), nil
}

func peekDNS(_ context.Context, _ *Server, e anchor.Element) (*api.PeekReply, error) {
	ns, ok := e.(*nameserver.Nameserver)
	if !ok {
		return nil, wrongElement(e)
	}
	return &api.PeekReply{Kind: string(kind.DNS), State: &api.PeekReply_Dns{Dns: toNameserverStat(ns)}}, nil
}
