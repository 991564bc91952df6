package server

import (
	"context"
	"errors"
	"time"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/element/docker"
	"github.com/circuit-project/circuit/internal/element/proc"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/kind"
)

type dockerService struct {
	api.UnimplementedDockerServer
	s *Server
}

func toDockerStat(st docker.Stat) *api.DockerStat {
	out := &api.DockerStat{Id: st.ID, Name: st.Name, Image: st.Image, Phase: st.Phase,
		ExitCode: int32(st.ExitCode), Exit: st.Exit, StartedUnixNano: st.Started.UnixNano()}
	if !st.Exited.IsZero() {
		out.ExitedUnixNano = st.Exited.UnixNano()
	}
	return out
}

func (s *Server) containerAt(raw string) (*docker.Container, error) {
	p, e, err := s.element(raw)
	if err != nil {
		return nil, err
	}
	c, ok := e.(*docker.Container)
	if !ok {
		return nil, fault.Errorf(fault.BadRequest, "%s holds a %s, not a docker container", p, e.Kind())
	}
	return c, nil
}

func (v *dockerService) Make(ctx context.Context, req *api.MakeDockerRequest) (*api.MakeDockerReply, error) {
	s := v.s
	if s.docker == nil {
		return nil, fault.Errorf(fault.Precondition, "server %s was started without -docker; start it with circuit start -docker ... to create containers", s.id)
	}
	p, err := s.localPath(req.GetPath())
	if err != nil {
		return nil, err
	}
	if len(p.Elems) == 0 || p.Recursive {
		return nil, fault.Errorf(fault.BadRequest, "a container needs an anchor below a server, like /%s/docky, not %s", s.id, p)
	}
	c := req.GetConfig()
	if c == nil || c.GetImage() == "" {
		return nil, fault.New(fault.BadRequest, `the container has no "Image"`)
	}
	cfg := docker.Config{Image: c.GetImage(), Memory: c.GetMemory(), CpuShares: c.GetCpuShares(), Lxc: c.GetLxc(),
		Volume: c.GetVolume(), Dir: c.GetDir(), Entry: c.GetEntry(), Env: c.GetEnv(), Path: c.GetPath(), Args: c.GetArgs(), Scrub: c.GetScrub()}
	release, err := s.tree.Reserve(p.Elems, kind.Docker)
	if err != nil {
		if anchor.IsOccupied(err) {
			return nil, fault.New(fault.Exists, err.Error())
		}
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	ctr, warnings, err := s.docker.Start(ctx, p.String(), cfg)
	if err != nil {
		release(nil)
		if errors.Is(err, docker.ErrImageNotFound) {
			return nil, fault.New(fault.NotFound, err.Error())
		}
		return nil, fault.New(fault.Remote, err.Error())
	}
	if err := release(ctr); err != nil {
		ctr.Scrub()
		return nil, fault.New(fault.Remote, err.Error())
	}
	if !s.goFunc(func() { s.reapContainer(p.Elems, ctr) }) {
		// The server is stopping and takes no reaper: the container goes now.
		s.tree.Remove(p.Elems, ctr)
		ctr.Scrub()
		return nil, fault.New(fault.Precondition, "the server is stopping")
	}
	return &api.MakeDockerReply{Stat: toDockerStat(ctr.Stat()), Warnings: warnings}, nil
}

// reapContainer removes a container made with Scrub when it exits, once its
// output was read (as for processes: see awaitOutput), and stops it when the
// server stops.
func (s *Server) reapContainer(elems []string, c *docker.Container) {
	select {
	case <-c.Done():
	case <-s.ctx.Done():
		c.Stop(2 * time.Second)
		return
	}
	if !c.Config().Scrub {
		return
	}
	s.awaitOutput(c.Streams)
	if s.tree.Remove(elems, c) {
		c.Scrub()
	}
}

func (v *dockerService) Peek(ctx context.Context, req *api.PathRequest) (*api.DockerInspect, error) {
	c, err := v.s.containerAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	return inspect(ctx, c)
}

// inspect asks the engine for a container's inspect document.
func inspect(ctx context.Context, c *docker.Container) (*api.DockerInspect, error) {
	b, err := c.Peek(ctx)
	if err != nil {
		return nil, fault.New(fault.Remote, err.Error()) // the engine failed, not the connection
	}
	return &api.DockerInspect{Json: b}, nil
}

func (v *dockerService) Wait(ctx context.Context, req *api.PathRequest) (*api.DockerStat, error) {
	c, err := v.s.containerAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	st, err := c.Wait(ctx)
	if err != nil {
		return nil, chanError(err)
	}
	return toDockerStat(st), nil
}

func (v *dockerService) Signal(_ context.Context, req *api.SignalRequest) (*api.SignalReply, error) {
	c, err := v.s.containerAt(req.GetPath())
	if err != nil {
		return nil, err
	}
	if err := c.Signal(req.GetSignal()); err != nil {
		if errors.Is(err, proc.ErrBadSignal) {
			return nil, fault.New(fault.BadRequest, err.Error())
		}
		return nil, fault.New(fault.Precondition, err.Error())
	}
	return &api.SignalReply{}, nil
}

func peekDocker(ctx context.Context, _ *Server, e anchor.Element) (*api.PeekReply, error) {
	c, ok := e.(*docker.Container)
	if !ok {
		return nil, wrongElement(e)
	}
	doc, err := inspect(ctx, c)
	if err != nil {
		return nil, err
	}
	return &api.PeekReply{Kind: string(kind.Docker), State: &api.PeekReply_Docker{Docker: doc}}, nil
}
