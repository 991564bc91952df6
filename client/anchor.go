package client

import (
	"context"
	"strings"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/kind"
)

// Anchor is a node of the circuit namespace, in the seeds' style: methods
// panic with *HostLostError or *DialinLostError when the connection is lost.
//
// The root anchor is the *Client itself; its children are the servers. Below
// a server, anchors are created by walking to them and garbage-collected
// when they hold no element and have no children.
type Anchor interface {
	// Walk returns the anchor at the given path below this one. It never
	// blocks and never fails: nothing is created until an element is made.
	Walk(walk []string) Anchor
	// View returns the children of this anchor by name.
	View() map[string]Anchor
	// Path is the anchor's absolute path.
	Path() string
	// ServerID is the ID of the server hosting the anchor ("" for the root).
	ServerID() string
	// Addr is the circuit URL of the hosting server ("" for the root).
	Addr() string
	// Get returns the element at this anchor: a Server for a server's
	// anchor, nil for an anchor with no element.
	Get() interface{}
	// Scrub removes the element at this anchor, if any, aborting it.
	Scrub()
	// MakeProc starts a process and attaches it here. It returns as soon
	// as the process runs. The error is non-nil if the binary cannot be
	// started or the anchor holds an element already.
	MakeProc(cmd Cmd) (Proc, error)
	// MakeChan creates a channel of capacity n here.
	MakeChan(n int) (Chan, error)
	// MakeOnJoin creates an @join subscription here: it yields the path of
	// every server that joins from now on.
	MakeOnJoin() (Subscription, error)
	// MakeOnLeave creates an @leave subscription here: it yields the path
	// of every server that leaves or fails from now on.
	MakeOnLeave() (Subscription, error)
	// MakeNameserver starts a DNS server here, on addr (host:port), or on
	// a free port of the hosting server's address when addr is "".
	MakeNameserver(addr string) (Nameserver, error)
	// MakeDocker creates and starts a container here (servers started with
	// -docker).
	MakeDocker(cfg DockerConfig) (Container, error)
}

// Split splits a path into its components: Split("/X1/a/b") is
// ["X1", "a", "b"].
func Split(path string) []string { return anchor.Split(path) }

// must panics with err, keeping the seeds' convention.
func must(err error) {
	if err != nil {
		panic(err)
	}
}

// Walk from the root: the first component is a server ID.
func (c *Client) Walk(walk []string) Anchor {
	if len(walk) == 0 {
		return c
	}
	return &pathAnchor{c: c, server: walk[0], elems: append([]string(nil), walk[1:]...)}
}

// View returns the servers of the cluster by ID.
func (c *Client) View() map[string]Anchor {
	members, err := c.members(context.Background())
	must(err)
	out := make(map[string]Anchor, len(members))
	for _, m := range members {
		out[m.ID] = &pathAnchor{c: c, server: m.ID}
	}
	return out
}

// Path of the root is "/".
func (c *Client) Path() string { return "/" }

// ServerID of the root is "".
func (c *Client) ServerID() string { return "" }

// Addr of the root is "".
func (c *Client) Addr() string { return "" }

// Get of the root is nil: the root holds no element.
func (c *Client) Get() interface{} { return nil }

// Scrub of the root does nothing.
func (c *Client) Scrub() {}

// errRoot is the error of making an element at the root.
var errRoot = fault.New(fault.BadRequest, "elements live below a server's anchor, not at /")

// MakeProc at the root is an error: processes live below a server.
func (c *Client) MakeProc(Cmd) (Proc, error) { return nil, errRoot }

// MakeChan at the root is an error.
func (c *Client) MakeChan(int) (Chan, error) { return nil, errRoot }

// MakeOnJoin at the root is an error.
func (c *Client) MakeOnJoin() (Subscription, error) { return nil, errRoot }

// MakeDocker at the root is an error.
func (c *Client) MakeDocker(DockerConfig) (Container, error) { return nil, errRoot }

// MakeNameserver at the root is an error.
func (c *Client) MakeNameserver(string) (Nameserver, error) { return nil, errRoot }

// MakeOnLeave at the root is an error.
func (c *Client) MakeOnLeave() (Subscription, error) { return nil, errRoot }

// pathAnchor is an anchor below the root, named by its path.
type pathAnchor struct {
	c      *Client
	server string
	elems  []string
}

func (a *pathAnchor) Walk(walk []string) Anchor {
	elems := make([]string, 0, len(a.elems)+len(walk))
	elems = append(append(elems, a.elems...), walk...)
	return &pathAnchor{c: a.c, server: a.server, elems: elems}
}

func (a *pathAnchor) Path() string {
	return "/" + strings.Join(append([]string{a.server}, a.elems...), "/")
}

func (a *pathAnchor) ServerID() string { return a.server }

func (a *pathAnchor) Addr() string {
	info, err := a.c.ServerInfo(context.Background(), a.server)
	must(err)
	return info.URL
}

func (a *pathAnchor) View() map[string]Anchor {
	entries, err := a.c.List(context.Background(), a.Path())
	must(err)
	out := make(map[string]Anchor, len(entries))
	for _, e := range entries {
		name := e.Path[strings.LastIndexByte(e.Path, '/')+1:]
		out[name] = a.Walk([]string{name})
	}
	return out
}

func (a *pathAnchor) Get() interface{} {
	if len(a.elems) == 0 {
		return &Server{c: a.c, id: a.server}
	}
	st, err := a.c.PeekAt(context.Background(), a.Path())
	if lost(err) {
		panic(err)
	}
	if k, ok := kinds[kind.Kind(st.Kind)]; ok && err == nil {
		return k.handle(a.c, a.Path())
	}
	return nil
}

func (a *pathAnchor) Scrub() {
	if len(a.elems) == 0 {
		return
	}
	if err := a.c.ScrubAt(context.Background(), a.Path()); lost(err) {
		panic(err)
	}
}

func (a *pathAnchor) MakeProc(cmd Cmd) (Proc, error) {
	h, err := a.c.MakeProcAt(context.Background(), a.Path(), cmd)
	if lost(err) {
		panic(err)
	}
	if err != nil {
		return nil, err
	}
	return h.Proc(), nil
}

// Server is the element at a server's anchor.
type Server struct {
	c  *Client
	id string
}

// Peek describes the server. It panics if the server is lost.
func (s *Server) Peek() ServerInfo {
	info, err := s.c.ServerInfo(context.Background(), s.id)
	must(err)
	return info
}

// Stack returns the server's goroutine stacks.
func (s *Server) Stack() []byte {
	b, err := s.c.Stack(context.Background(), s.id)
	must(err)
	return b
}

// Suicide makes the server leave the cluster and exit.
func (s *Server) Suicide() {
	must(s.c.StopServer(context.Background(), s.id))
}

func (a *pathAnchor) MakeChan(n int) (Chan, error) {
	h, err := a.c.MakeChanAt(context.Background(), a.Path(), n)
	if lost(err) {
		panic(err)
	}
	if err != nil {
		return nil, err
	}
	return h.Chan(), nil
}

func (a *pathAnchor) MakeOnJoin() (Subscription, error)  { return a.makeSub(kind.Join) }
func (a *pathAnchor) MakeOnLeave() (Subscription, error) { return a.makeSub(kind.Leave) }

func (a *pathAnchor) makeSub(k kind.Kind) (Subscription, error) {
	h, err := a.c.MakeSubscriptionAt(context.Background(), a.Path(), string(k))
	if lost(err) {
		panic(err)
	}
	if err != nil {
		return nil, err
	}
	return h.Subscription(), nil
}

func (a *pathAnchor) MakeNameserver(addr string) (Nameserver, error) {
	h, err := a.c.MakeNameserverAt(context.Background(), a.Path(), addr)
	if lost(err) {
		panic(err)
	}
	if err != nil {
		return nil, err
	}
	return h.Nameserver(), nil
}

func (a *pathAnchor) MakeDocker(cfg DockerConfig) (Container, error) {
	h, _, err := a.c.MakeDockerAt(context.Background(), a.Path(), cfg)
	if lost(err) {
		panic(err)
	}
	if err != nil {
		return nil, err
	}
	return h.Container(), nil
}
