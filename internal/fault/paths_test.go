package fault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/cli"
	"github.com/circuit-project/circuit/internal/cluster"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/label"
	"github.com/circuit-project/circuit/internal/server"
	"github.com/circuit-project/circuit/internal/testsupport"
)

// pair is two servers in this process, a (the dial-in server) and b, whose
// operations fail as refuse says.
type pair struct {
	a, b   *server.Server
	refuse atomic.Pointer[fault.Error] // nil: nothing is refused
	ctx    context.Context             // the test's bound
	c      *client.Client              // dialled in to a
}

// startPair starts a and b, and a client of a; b has the label side=b. Operations on paths
// below /X…/target, and every run, are refused with p.refuse when set.
func startPair(t *testing.T) *pair {
	p := &pair{}
	check := func(op, path string) error {
		e := p.refuse.Load()
		if e == nil || !(strings.Contains(path, "/target") || op == "Stream.run") {
			return nil
		}
		return e
	}
	start := func(cfg server.Config) *server.Server {
		cfg.Addr, cfg.Timing, cfg.Check = "127.0.0.1:0", cluster.Local, check
		s, err := server.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		return s
	}
	p.a = start(server.Config{})
	p.b = start(server.Config{Join: []string{p.a.URL().String()}, Labels: label.Set{"side": "b"}})
	for _, s := range []*server.Server{p.a, p.b} {
		testsupport.Eventually(t, 20*time.Second, func() error {
			if n := len(s.Members()); n != 2 {
				return fmt.Errorf("%s sees %d servers, want 2", s.ID(), n)
			}
			return nil
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	c, err := client.Connect(ctx, client.Options{Addr: p.a.URL().String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p.ctx, p.c = ctx, c
	return p
}

// cliRun runs a command line against the dial-in server a.
func (p *pair) cliRun(ctx context.Context, stdin string, args ...string) (code int, stderr string) {
	var out, errb bytes.Buffer
	env := &cli.Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Ctx: ctx, Getenv: func(string) string { return "" }}
	args = append(args[:1:1], append([]string{"-d", p.a.URL().String()}, args[1:]...)...)
	return cli.Main(env, args), errb.String()
}

// path is one way a request reaches the server that executes it: the
// client library's call, and the command line that makes the same call.
type path struct {
	name   string
	client func(ctx context.Context, c *client.Client, p *pair) error
	cli    func(p *pair) []string
	// exit, when set, is the command line's exit code for a class, where
	// it is not the class's own.
	exit func(fault.Class) int
}

// exitFor is the command line's exit code on path pt for a class.
func (pt path) exitFor(c fault.Class) int {
	if pt.exit != nil {
		return pt.exit(c)
	}
	return c.Exit()
}

func target(s *server.Server) string { return "/" + s.ID().String() + "/target" }

var paths = []path{
	{"unary RPC",
		func(ctx context.Context, c *client.Client, p *pair) error { return c.ScrubAt(ctx, target(p.a)) },
		func(p *pair) []string { return []string{"scrub", target(p.a)} }, nil},
	{"relayed RPC",
		func(ctx context.Context, c *client.Client, p *pair) error { return c.ScrubAt(ctx, target(p.b)) },
		func(p *pair) []string { return []string{"scrub", target(p.b)} }, nil},
	{"stream open",
		func(ctx context.Context, c *client.Client, p *pair) error {
			conn, err := c.OpenStreamAt(ctx, target(p.b), "stdout")
			if err == nil {
				conn.Close()
			}
			return err
		},
		func(p *pair) []string { return []string{"stdout", target(p.b)} }, nil},
	{"run stream",
		func(ctx context.Context, c *client.Client, p *pair) error {
			res, err := c.Run(ctx, client.Cmd{Path: "/bin/true"}, client.RunOptions{Selector: "side=b"})
			if err != nil {
				return fmt.Errorf("the whole run failed: %w", err)
			}
			if len(res) != 1 {
				return fmt.Errorf("%d results, want 1", len(res))
			}
			return res[0].Err
		},
		func(p *pair) []string { return []string{"run", "-l", "side=b", "--", "/bin/true"} },
		// run counts a copy that failed at its server (it could not
		// start) as 255, as ssh does; a refusal as its class's code.
		func(c fault.Class) int {
			if c == fault.Remote {
				return 255
			}
			return c.Exit()
		}},
}

// TestEveryClassOnEveryPath refuses an operation in each class of the
// table, on each path a request takes, and checks that the client's error
// is of that class (and never a lost host or dial-in server) and that the
// command line exits with the class's code.
func TestEveryClassOnEveryPath(t *testing.T) {
	p := startPair(t)
	ctx, c := p.ctx, p.c
	for _, class := range fault.Classes() {
		if class == fault.Lost {
			continue // a server never sends it: TestLostTransport
		}
		for _, pt := range paths {
			t.Run(class.String()+"/"+pt.name, func(t *testing.T) {
				msg := fmt.Sprintf("refused as %s on the %s", class, pt.name)
				p.refuse.Store(&fault.Error{Class: class, Msg: msg})
				defer p.refuse.Store(nil)

				err := pt.client(ctx, c, p)
				var lost *client.HostLostError
				var dl *client.DialinLostError
				switch {
				case err == nil:
					t.Fatal("no error")
				case !errors.Is(err, class.Sentinel()):
					t.Errorf("client error %q (%T) does not match %v", err, err, class.Sentinel())
				case errors.As(err, &lost), errors.As(err, &dl), errors.Is(err, client.ErrLost):
					t.Errorf("client error %q is a lost connection", err)
				case fault.Of(err) != class:
					t.Errorf("client error %q is of class %v", err, fault.Of(err))
				case !strings.Contains(err.Error(), msg):
					t.Errorf("client error %q does not carry the server's message", err)
				}

				code, stderr := p.cliRun(ctx, "", pt.cli(p)...)
				if code != pt.exitFor(class) || !strings.Contains(stderr, msg) {
					t.Errorf("circuit %v: exit %d, stderr %q; want exit %d saying %q", pt.cli(p), code, stderr, pt.exitFor(class), msg)
				}
			})
		}
	}
}

// TestRealFailures checks the classes of failures that happen for real,
// with no refusal injected: those a new user meets first.
func TestRealFailures(t *testing.T) {
	p := startPair(t)
	ctx, c := p.ctx, p.c
	b := "/" + p.b.ID().String()
	if _, err := c.MakeChanAt(ctx, b+"/taken", 0); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		class fault.Class
		says  string
		stdin string
		args  []string
	}{
		{"join an address where nothing listens", fault.Remote, "joining 127.0.0.1:1", "", []string{"join", "circuit://127.0.0.1:1/1/X0123456789abcdef"}},
		{"stdout of a missing path", fault.NotFound, "no element at " + b + "/missing", "", []string{"stdout", b + "/missing"}},
		{"stderr of a missing path", fault.NotFound, "no element at " + b + "/missing", "", []string{"stderr", b + "/missing"}},
		{"stdin of a missing path", fault.NotFound, "no element at " + b + "/missing", "x", []string{"stdin", b + "/missing"}},
		{"peek of a missing path", fault.NotFound, b + "/missing", "", []string{"peek", b + "/missing"}},
		{"mkchan on a taken anchor", fault.Exists, "taken", "", []string{"mkchan", b + "/taken", "0"}},
		{"stdout of a channel", fault.BadRequest, "which has no stdout", "", []string{"stdout", b + "/taken"}},
		{"a container on a server without -docker", fault.Precondition, "without -docker", `{"Image": "none"}`, []string{"mkdkr", b + "/box"}},
		{"a command that cannot start", fault.Remote, "/no/such/binary", `{"Path": "/no/such/binary"}`, []string{"mkproc", b + "/job"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := p.cliRun(ctx, tc.stdin, tc.args...)
			if code != tc.class.Exit() || !strings.Contains(stderr, tc.says) || strings.Contains(stderr, "dial-in") {
				t.Errorf("exit %d, stderr %q; want exit %d (%v) saying %q, not blaming the dial-in server", code, stderr, tc.class.Exit(), tc.class, tc.says)
			}
		})
	}

	// The client library, for the join that was once reported as a lost
	// dial-in server.
	err := c.JoinDialin(ctx, "circuit://127.0.0.1:1/1/X0123456789abcdef")
	var dl *client.DialinLostError
	if !errors.Is(err, client.ErrRemote) || errors.As(err, &dl) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("join: %v (%T); want a remote failure naming 127.0.0.1:1", err, err)
	}
	if _, err := c.MakeChanAt(ctx, b+"/taken", 0); !errors.Is(err, client.ErrExists) || !errors.Is(err, client.ErrRemote) {
		t.Errorf("mkchan on a taken anchor: %v; want ErrExists, which matches ErrRemote too", err)
	}
}

// TestLostTransport stops the servers: only then is an error a lost host
// or a lost dial-in server, on every path.
func TestLostTransport(t *testing.T) {
	p := startPair(t)
	ctx, c := p.ctx, p.c
	if err := c.ScrubAt(ctx, target(p.b)); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("scrub of a missing anchor on b: %v, want not found", err)
	}

	// b leaves: a relays to it no more, and says b is not a member.
	p.b.Stop()
	testsupport.Eventually(t, 20*time.Second, func() error {
		if n := len(p.a.Members()); n != 1 {
			return fmt.Errorf("a still lists %d servers, want itself alone", n)
		}
		return nil
	})
	for _, pt := range paths[1:3] { // the relayed RPC and the stream, to b
		err := pt.client(ctx, c, p)
		var lost *client.HostLostError
		// (NotMember, once gRPC has seen the old connection end; a call
		// made before that fails on it, as a host lost all the same.)
		if !errors.As(err, &lost) || !errors.Is(err, client.ErrLost) || fault.Of(err) != fault.Lost {
			t.Errorf("%s to a server that left: %v (%T), want a lost host", pt.name, err, err)
		}
		if code, stderr := p.cliRun(ctx, "", pt.cli(p)...); code != cli.ExitNotFound {
			t.Errorf("circuit %v on a server that left: exit %d (%s), want %d: no such server", pt.cli(p), code, stderr, cli.ExitNotFound)
		}
	}

	// The dial-in server stops: every path fails as a lost dial-in server.
	p.a.Stop()
	for _, pt := range paths {
		err := pt.client(ctx, c, p)
		var dl *client.DialinLostError
		if !errors.As(err, &dl) || !errors.Is(err, client.ErrLost) || fault.Of(err) != fault.Lost {
			t.Errorf("%s through a stopped dial-in server: %v (%T), want a lost dial-in server", pt.name, err, err)
		}
		if code, stderr := p.cliRun(ctx, "", pt.cli(p)...); code != fault.Lost.Exit() {
			t.Errorf("circuit %v through a stopped dial-in server: exit %d (%s), want %d", pt.cli(p), code, stderr, fault.Lost.Exit())
		}
	}
}
