package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/label"
	"github.com/circuit-project/circuit/internal/op"
	"github.com/circuit-project/circuit/internal/security"
)

// TestTableCoversEveryOperation: every gRPC method the server serves has
// its entry in the table of operations, and every entry names a method
// or a stream that exists, so no operation is allowed by being forgotten.
func TestTableCoversEveryOperation(t *testing.T) {
	s := startServer(t, Config{})
	served := map[string]bool{}
	for svc, info := range s.rpc.GetServiceInfo() {
		for _, m := range info.Methods {
			name := opName("/" + svc + "/" + m.Name)
			served[name] = true
			if _, ok := op.Lookup(name); !ok {
				t.Errorf("%s is served but not in the table of operations", name)
			}
		}
	}
	for _, o := range op.All() {
		if !served[o.Name] && !strings.HasPrefix(o.Name, "Stream.") {
			t.Errorf("%s is in the table but no method serves it", o.Name)
		}
	}
	// Every fact the table records of a request is a field of it.
	for _, o := range op.All() {
		svc, method, _ := strings.Cut(o.Name, ".")
		sd := api.File_circuit_proto.Services().ByName(protoreflect.Name(svc))
		if sd == nil || len(o.Audit) == 0 {
			continue
		}
		in := sd.Methods().ByName(protoreflect.Name(method)).Input()
		for _, f := range o.Audit {
			md := in
			parts := strings.Split(f, ".")
			for i, part := range parts {
				fd := md.Fields().ByName(protoreflect.Name(part))
				if fd == nil {
					t.Errorf("%s records %q, which its request %s does not have", o.Name, f, in.FullName())
					break
				}
				if i < len(parts)-1 {
					md = fd.Message()
				}
			}
		}
	}
	if want := []string{"stdin", "stdout", "stderr", "chan", "run", "get", "put", "puttar"}; !slices.Equal(op.Streams(), want) {
		t.Errorf("the table's streams are %q, want %q", op.Streams(), want)
	}
}

// mintFile writes a credential with the given claims under key to a file.
func mintFile(t *testing.T, key *security.Key, c security.Claims) string {
	t.Helper()
	b, err := key.Mint(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "c.cred")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRolesEnforced: each credential may do what its role, selector and
// subtree allow and nothing more; a refusal is a *client.PermissionError
// naming who, the role, the operation, the path and why.
func TestRolesEnforced(t *testing.T) {
	_, key := newKey(t)
	s := startServer(t, Config{Key: key, Labels: label.Set{"role": "web"}})
	self := "/" + s.ID().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dial := func(c security.Claims) *client.Client {
		t.Helper()
		cl, err := client.Connect(ctx, client.Options{Addr: s.URL().String(), CredFile: mintFile(t, key, c)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	sleep := client.Cmd{Path: "/bin/sleep", Args: []string{"60"}, NoStdin: true, Scrub: true}
	mkproc := func(c *client.Client, path string) error {
		h, err := c.MakeProcAt(ctx, path, sleep)
		if err == nil {
			h.Signal(ctx, "KILL")
		}
		return err
	}
	list := func(c *client.Client) error { _, err := c.List(ctx, self+"/..."); return err }
	stop := func(c *client.Client) error { return c.StopServer(ctx, s.ID().String()) }

	reader := dial(security.Claims{Name: "alice", Role: "read"})
	operator := dial(security.Claims{Name: "bob", Role: "operate"})
	db := dial(security.Claims{Name: "carol", Role: "admin", Selector: "role=db"})
	web := dial(security.Claims{Name: "dave", Role: "operate", Selector: "role in (web, api)"})
	nobody := dial(security.Claims{Name: "eve", Role: "superuser"})
	jobs := dial(security.Claims{Name: "frank", Role: "operate", Path: "/jobs"})

	for _, tc := range []struct {
		name   string
		call   func() error
		reason string // how the refusal's reason ends; "" for allowed
	}{
		{"read lists", func() error { return list(reader) }, ""},
		{"read may not mkproc", func() error { return mkproc(reader, self+"/a") }, "it needs role operate"},
		{"operate may mkproc", func() error { return mkproc(operator, self+"/a") }, ""},
		{"operate may not stop a server", func() error { return stop(operator) }, "it needs role admin"},
		{"read may not respawn", func() error {
			_, err := reader.RespawnAt(ctx, self+"/"+anchorfs.NewWorkerID(), "", 0)
			return err
		}, "it needs role operate"},
		{"a selector that does not match", func() error { return list(db) }, `outside its selector "role=db"`},
		{"a selector that matches", func() error { return mkproc(web, self+"/b") }, ""},
		{"an unknown role may do nothing", func() error { return list(nobody) }, "it needs role read"},
		{"in its subtree", func() error { return mkproc(jobs, self+"/jobs/c") }, ""},
		{"outside its subtree", func() error { return mkproc(jobs, self+"/other") }, "outside its subtree /jobs"},
		{"its subtree's parent is not its subtree", func() error { return mkproc(jobs, self+"/jobs") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var pe *client.PermissionError
			if !errors.As(err, &pe) || !errors.Is(err, client.ErrDenied) || errors.Is(err, client.ErrLost) || !strings.HasSuffix(pe.Reason, tc.reason) || pe.Op == "" || pe.Who == "" {
				t.Fatalf("got %#v (%v), want a permission error saying %q", err, err, tc.reason)
			}
		})
	}

	// A subtree's listing holds only the subtree.
	for _, path := range []string{self + "/other", self + "/jobs/d"} {
		if _, err := operator.MakeProcAt(ctx, path, sleep); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := jobs.List(ctx, self+"/...")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Kind != "server" && !strings.HasPrefix(e.Path, self+"/jobs") {
			t.Fatalf("a credential limited to /jobs listed %s", e.Path)
		}
	}

	// A process started by a credential gets its role and limits, no more.
	worker := anchorfs.NewWorkerID()
	h, err := jobs.MakeProcAt(ctx, self+"/jobs/"+worker, client.Cmd{Path: "/bin/sleep", Args: []string{"60"}, NoStdin: true, Cred: true, Scrub: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Signal(ctx, "KILL")
	b, err := os.ReadFile(credOf(t, h))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := security.ParseCredential(b)
	if err != nil {
		t.Fatal(err)
	}
	if c := cc.Claims(); c.Role != "operate" || c.Path != "/jobs" || c.Parent != "frank" || c.NotAfter.After(time.Now().Add(time.Hour)) {
		t.Fatalf("the worker of a credential limited to /jobs got %+v", c)
	}
}

// TestNoExec: a server started with -no-exec refuses every operation that
// starts a command to everyone, the key's holder included, and serves the
// rest.
func TestNoExec(t *testing.T) {
	text, key := newKey(t)
	s := startServer(t, Config{Key: key, NoExec: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{Addr: s.URL().String(), Key: []byte(text)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	self := "/" + s.ID().String()
	_, err = c.MakeProcAt(ctx, self+"/job", client.Cmd{Path: "/bin/true"})
	var pe *client.PermissionError
	if !errors.As(err, &pe) || pe.Who != "key" || pe.Op != "Proc.Make" || !strings.Contains(pe.Reason, "-no-exec") {
		t.Fatalf("mkproc under -no-exec: %v", err)
	}
	if _, err := c.RespawnAt(ctx, self+"/"+anchorfs.NewWorkerID(), "", 0); !errors.As(err, &pe) || pe.Op != "Proc.Respawn" || !strings.Contains(pe.Reason, "-no-exec") {
		t.Fatalf("respawn under -no-exec: %v", err)
	}
	if _, err := c.MakeChanAt(ctx, self+"/ch", 0); err != nil {
		t.Fatalf("mkchan under -no-exec: %v", err)
	}
}
