package client

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"time"

	"github.com/circuit-project/circuit/internal/api"
)

// DockerConfig describes a container to run, with the seed's field names.
type DockerConfig struct {
	Image     string
	Memory    int64 // bytes
	CpuShares int64
	Lxc       []string // obsolete in Docker: accepted, ignored, with a warning
	Volume    []string // "/webapp" or "/src/webapp:/opt/webapp:ro"
	Dir       string
	Entry     string // entrypoint; "" keeps the image's
	Env       []string
	Path      string // the command; "" keeps the image's
	Args      []string
	Scrub     bool // remove the element when the container exits
}

// ContainerStat is the state of a container.
type ContainerStat struct {
	ID       string
	Name     string
	Image    string
	Phase    string // "running" or "exited"
	ExitCode int
	Exit     error // nil while running and after success
	Started  time.Time
	Exited   time.Time
}

// MarshalJSON writes the state as circuit wait prints it (docs/CLI.md):
// Exit as its message, or null; Exited only once the container has exited.
func (st ContainerStat) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID, Name, Image, Phase string
		ExitCode               int
		Exit                   *string
		Started                time.Time
		Exited                 *time.Time `json:",omitempty"`
	}{st.ID, st.Name, st.Image, st.Phase, st.ExitCode, errText(st.Exit), st.Started, timeOrNil(st.Exited)})
}

func fromDockerStat(st *api.DockerStat) ContainerStat {
	out := ContainerStat{ID: st.GetId(), Name: st.GetName(), Image: st.GetImage(), Phase: st.GetPhase(),
		ExitCode: int(st.GetExitCode()), Started: time.Unix(0, st.GetStartedUnixNano())}
	if st.GetExitedUnixNano() != 0 {
		out.Exited = time.Unix(0, st.GetExitedUnixNano())
	}
	if st.GetExit() != "" {
		out.Exit = &ExitError{Code: out.ExitCode, Msg: st.GetExit()}
	}
	return out
}

// ContainerHandle is a container element, in the context style.
type ContainerHandle struct {
	c    *Client
	path string
}

// ContainerAt returns a handle on the container at path.
func (c *Client) ContainerAt(path string) *ContainerHandle { return &ContainerHandle{c: c, path: path} }

// MakeDockerAt creates and starts a container at path. Warnings (such as
// ignored Lxc options) come back beside the handle.
func (c *Client) MakeDockerAt(ctx context.Context, path string, cfg DockerConfig) (*ContainerHandle, []string, error) {
	sc, err := c.serverOf(path)
	if err != nil {
		return nil, nil, err
	}
	r, err := api.NewDockerClient(sc.cc).Make(ctx, &api.MakeDockerRequest{Path: path, Config: &api.DockerConfig{
		Image: cfg.Image, Memory: cfg.Memory, CpuShares: cfg.CpuShares, Lxc: cfg.Lxc, Volume: cfg.Volume,
		Dir: cfg.Dir, Entry: cfg.Entry, Env: cfg.Env, Path: cfg.Path, Args: cfg.Args, Scrub: cfg.Scrub,
	}})
	if err != nil {
		return nil, nil, c.wrap(ctx, sc, err)
	}
	return c.ContainerAt(path), r.GetWarnings(), nil
}

// Peek returns the container's inspect document.
func (h *ContainerHandle) Peek(ctx context.Context) (json.RawMessage, error) {
	sc, err := h.c.serverOf(h.path)
	if err != nil {
		return nil, err
	}
	r, err := api.NewDockerClient(sc.cc).Peek(ctx, &api.PathRequest{Path: h.path})
	if err != nil {
		return nil, h.c.wrap(ctx, sc, err)
	}
	return r.GetJson(), nil
}

func containerState(r *api.PeekReply) any {
	if st := r.GetDocker(); st != nil {
		return json.RawMessage(st.GetJson())
	}
	return nil
}

func containerHandle(c *Client, path string) any { return c.ContainerAt(path).Container() }

// Wait blocks until the container exits.
func (h *ContainerHandle) Wait(ctx context.Context) (ContainerStat, error) {
	sc, err := h.c.serverOf(h.path)
	if err != nil {
		return ContainerStat{}, err
	}
	st, err := api.NewDockerClient(sc.cc).Wait(ctx, &api.PathRequest{Path: h.path})
	if err != nil {
		return ContainerStat{}, h.c.wrap(ctx, sc, err)
	}
	return fromDockerStat(st), nil
}

// Signal sends a signal by name to the container.
func (h *ContainerHandle) Signal(ctx context.Context, sig string) error {
	sc, err := h.c.serverOf(h.path)
	if err != nil {
		return err
	}
	_, err = api.NewDockerClient(sc.cc).Signal(ctx, &api.SignalRequest{Path: h.path, Signal: sig})
	return h.c.wrap(ctx, sc, err)
}

// OpenStream connects to the container's stdin, stdout or stderr.
func (h *ContainerHandle) OpenStream(ctx context.Context, name string) (net.Conn, error) {
	return h.c.openStream(ctx, h.path, name, 0)
}

// Container is a container element in the seeds' style: the verbs of a
// process, and Peek gives the inspect document.
type Container interface {
	Stdin() io.WriteCloser
	Stdout() io.ReadCloser
	Stderr() io.ReadCloser
	Wait() (ContainerStat, error)
	Signal(sig string) error
	Peek() json.RawMessage
	Scrub()
}

type seedContainer struct {
	h                     *ContainerHandle
	stdin, stdout, stderr *lazyStream
}

// Container returns the seeds'-style view.
func (h *ContainerHandle) Container() Container {
	c := &seedContainer{h: h}
	c.stdin, c.stdout, c.stderr = streams(h.path, h.OpenStream)
	return c
}

func (c *seedContainer) Stdin() io.WriteCloser { return c.stdin }
func (c *seedContainer) Stdout() io.ReadCloser { return c.stdout }
func (c *seedContainer) Stderr() io.ReadCloser { return c.stderr }

func (c *seedContainer) Wait() (ContainerStat, error) {
	st, err := c.h.Wait(context.Background())
	if lost(err) {
		panic(err)
	}
	return st, err
}

func (c *seedContainer) Signal(sig string) error {
	err := c.h.Signal(context.Background(), sig)
	if lost(err) {
		panic(err)
	}
	return err
}

func (c *seedContainer) Peek() json.RawMessage {
	b, err := c.h.Peek(context.Background())
	if lost(err) {
		panic(err)
	}
	return b
}

func (c *seedContainer) Scrub() {
	if err := c.h.c.ScrubAt(context.Background(), c.h.path); lost(err) {
		panic(err)
	}
}
