package server

import (
	"context"
	"os"
	"runtime"
	"strings"

	"google.golang.org/grpc"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/cluster"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/footprint"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/kind"
	"github.com/circuit-project/circuit/internal/version"
)

// opName turns "/circuit.v1.Server/List" into "Server.List".
func opName(fullMethod string) string {
	name := strings.TrimPrefix(fullMethod, "/circuit.v1.")
	return strings.Replace(name, "/", ".", 1)
}

// reqPath is the anchor path that a request names, or "".
func reqPath(req any) string {
	if p, ok := req.(interface{ GetPath() string }); ok {
		return p.GetPath()
	}
	return ""
}

// unaryOp numbers and logs every unary operation (package oplog), and
// counts and times it when metrics are on.
func (s *Server) unaryOp(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	footprint.Wake()
	name, start := opName(info.FullMethod), s.metrics.Now()
	path := reqPath(req)
	who := callerOf(ctx)
	f := who.fields(path)
	f.What = requestWhat(name, req)
	op, err := s.ops.Begin(name, f)
	if err != nil {
		err = fault.New(fault.Precondition, err.Error())
	} else {
		err = s.permit(who, name, path)
	}
	if err != nil {
		op.End(err)
		s.metrics.Operation(name, start, err)
		return nil, err
	}
	resp, err := h(withOp(ctx, op), req)
	op.End(err)
	s.metrics.Operation(name, start, err)
	return resp, err
}

// streamOp numbers and logs every streaming operation when it starts, and
// counts and times it when it ends, when metrics are on.
func (s *Server) streamOp(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	footprint.Wake()
	name, start := opName(info.FullMethod), s.metrics.Now()
	op, err := s.ops.Begin(name, callerOf(ss.Context()).fields(""))
	if err != nil {
		err = fault.New(fault.Precondition, err.Error())
	} else {
		ss, err = s.authorizeStream(ss.Context(), ss, name)
	}
	if err == nil {
		err = s.check(name, "")
	}
	if err == nil {
		err = h(srv, ss)
	}
	op.End(err)
	s.metrics.Operation(name, start, err)
	return err
}

// permit decides whether who may run operation op on path: the table of
// operations (authorize), then Config.Check.
func (s *Server) permit(who caller, op, path string) error {
	if err := s.authorize(who, op, path); err != nil {
		return err
	}
	return s.check(op, path)
}

// check asks Config.Check, if set, whether operation op on path may run.
func (s *Server) check(op, path string) error {
	if s.cfg.Check == nil {
		return nil
	}
	return s.cfg.Check(op, path)
}

// serverService implements the server element and the namespace listing.
type serverService struct {
	api.UnimplementedServerServer
	s *Server
}

func toMember(m cluster.Member) *api.Member {
	return &api.Member{Id: m.ID.String(), Addr: m.Addr, Url: m.URL().String(), Pid: int64(m.PID), Labels: m.Labels, Dc: m.DC}
}

func (s *Server) members() []*api.Member {
	var out []*api.Member
	for _, m := range s.cluster.Members() {
		out = append(out, toMember(m))
	}
	return out
}

// info describes the server, for Info and for Anchor.Peek on its anchor.
func (s *Server) info() *api.InfoReply {
	return &api.InfoReply{
		Id: s.id.String(), Url: s.url.String(), Addr: s.url.Addr, Pid: int64(os.Getpid()),
		StartedUnixNano: s.started.UnixNano(), Version: version.String(), GoVersion: version.Go(),
		Members: s.members(), Elements: int64(s.tree.Count()), Keyed: s.ring != nil,
		Labels: s.cfg.Labels, Dc: s.cfg.DC,
	}
}

func (v *serverService) Info(context.Context, *api.InfoRequest) (*api.InfoReply, error) {
	return v.s.info(), nil
}

func (v *serverService) Members(context.Context, *api.MembersRequest) (*api.MembersReply, error) {
	return &api.MembersReply{Members: v.s.members()}, nil
}

// localPath parses a path and checks that it lives on this server.
func (s *Server) localPath(raw string) (anchor.Path, error) {
	p, err := anchor.Parse(raw)
	if err != nil {
		return p, fault.New(fault.BadRequest, err.Error())
	}
	if p.Server != s.id {
		return p, fault.Errorf(fault.BadRequest, "path %s is not on server %s", raw, s.id)
	}
	return p, nil
}

func (v *serverService) List(ctx context.Context, req *api.ListRequest) (*api.ListReply, error) {
	p, err := v.s.localPath(req.GetPath())
	if err != nil {
		return nil, err
	}
	who := callerOf(ctx)
	var out []*api.Entry
	for _, e := range v.s.tree.List(p.Elems, req.GetRecursive() || p.Recursive) {
		if v.s.inScope(who, e.Path) || e.Kind == kind.Server {
			out = append(out, &api.Entry{Path: e.Path, Kind: string(e.Kind)})
		}
	}
	return &api.ListReply{Entries: out}, nil
}

func (v *serverService) Stack(context.Context, *api.StackRequest) (*api.StackReply, error) {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return &api.StackReply{Stacks: buf[:n]}, nil
		}
		if len(buf) >= 64<<20 {
			return &api.StackReply{Stacks: buf[:n]}, nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

func (v *serverService) Stop(context.Context, *api.StopRequest) (*api.StopReply, error) {
	v.s.log.Warn("stop requested by a client")
	v.s.requestStop()
	return &api.StopReply{}, nil
}

func (v *serverService) Join(_ context.Context, req *api.JoinRequest) (*api.JoinReply, error) {
	u, err := ident.ParseURL(req.GetUrl())
	if err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	if err := v.s.cluster.Join(u.Addr); err != nil {
		// The join target failed, not this server: a remote failure,
		// never a lost connection. The error names the target.
		return nil, fault.New(fault.Remote, err.Error())
	}
	return &api.JoinReply{}, nil
}
