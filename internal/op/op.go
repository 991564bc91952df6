// Package op owns the table of operations: every operation a circuit server
// executes, named as its records name it (Proc.Make, Stream.stdout), with
// the least role that may run it and whether it starts a command. The
// server that executes an operation enforces the table (package server),
// never a relay or a client; a test checks that every gRPC method and every
// stream the server serves has its entry, so nothing is allowed by being
// forgotten. docs/CLI.md's table of roles is written from it.
package op

import (
	"fmt"
	"slices"
	"strings"
)

// Role is what a credential may do. Roles are ordered: each may do what
// the one before it may, and more.
type Role uint8

const (
	// None may do nothing.
	None Role = iota
	// Read changes nothing: listing, peeking, waiting, stacks, versions.
	Read
	// Operate adds making, changing and removing elements, running
	// commands, copying files, sending and receiving, spawning, killing.
	Operate
	// Admin adds what acts on the cluster itself: stopping a server,
	// joining, revocation, the keyring, and reading the records of who ran
	// what.
	Admin
)

var roleNames = []string{None: "none", Read: "read", Operate: "operate", Admin: "admin"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("role(%d)", r)
}

// ParseRole parses a role's name: read, operate or admin.
func ParseRole(s string) (Role, error) {
	if i := slices.Index(roleNames, s); i > int(None) {
		return Role(i), nil
	}
	return None, fmt.Errorf("unknown role %q: the roles are read, operate and admin", s)
}

// Op is one operation.
type Op struct {
	Name string // as records name it: Service.Method, or Stream.NAME
	Role Role   // the least role that may run it
	// Exec: it starts a command (a process, a container, a worker). A
	// server started with -no-exec refuses it to everyone.
	Exec bool
	What string // what it is, for docs/CLI.md
	// Audit names the facts of a request that its records carry besides
	// its path: fields of the request message (proto names, dotted into
	// nested messages, "cmd.args"), or of a stream's header and command.
	Audit []string
}

// table is every operation, in the order docs/CLI.md lists them.
var table = []Op{
	{"Server.Info", Read, false, "a server's version and identity (version)", nil},
	{"Server.Members", Read, false, "the cluster's members (every command, to find servers)", nil},
	{"Server.List", Read, false, "list anchors (ls)", nil},
	{"Server.Stack", Read, false, "a server's goroutine stacks (stk)", nil},
	{"Server.Profile", Read, false, "profile a server or a worker (pprof, stk of a worker)", []string{"kind", "nanos"}},
	{"Anchor.Get", Read, false, "the kind of the element at an anchor", nil},
	{"Anchor.Peek", Read, false, "peek at any element", nil},
	{"Proc.Peek", Read, false, "peek at a process", nil},
	{"Proc.Wait", Read, false, "wait for a process to exit (wait)", nil},
	{"Chan.Peek", Read, false, "peek at a channel or subscription", nil},
	{"Nameserver.Peek", Read, false, "peek at a DNS element", nil},
	{"Docker.Peek", Read, false, "peek at a container", nil},
	{"Docker.Wait", Read, false, "wait for a container to exit", nil},
	{"Dirs.List", Read, false, "list the anchor file system", nil},
	{"Dirs.Graveyard", Read, false, "list the records of ended workers (graveyard)", nil},
	{"Binary.Stat", Read, false, "whether a server stores a binary (Spawn)", nil},

	{"Proc.Make", Operate, true, "start a process (mkproc, exec, Spawn)", []string{"cmd.path", "cmd.args", "cmd.dir", "cmd.dirs", "cmd.tty", "cmd.cred"}},
	{"Proc.Signal", Operate, false, "signal a process (signal, kill)", []string{"signal"}},
	{"Proc.Resize", Operate, false, "resize a process's terminal (exec -t)", []string{"rows", "cols"}},
	{"Proc.Respawn", Operate, true, "replace a worker with a new one (respawn)", []string{"binary_sha256", "grace_nanos"}},
	{"Docker.Make", Operate, true, "start a container (mkdkr)", []string{"config.image", "config.path", "config.args", "config.dir", "config.volume"}},
	{"Docker.Signal", Operate, false, "signal a container", []string{"signal"}},
	{"Chan.Make", Operate, false, "make a channel or a subscription (mkchan, mk@join, mk@leave)", []string{"kind", "cap"}},
	{"Chan.Send", Operate, false, "send on a channel (send)", nil},
	{"Chan.Recv", Operate, false, "receive from a channel or subscription (recv): it consumes", nil},
	{"Chan.Close", Operate, false, "close a channel (close)", nil},
	{"Nameserver.Make", Operate, false, "make a DNS element (mkdns)", []string{"addr"}},
	{"Nameserver.Set", Operate, false, "set a resource record (set)", []string{"record"}},
	{"Nameserver.Unset", Operate, false, "remove resource records (unset)", []string{"name"}},
	{"Anchor.Scrub", Operate, false, "remove an element (scrub)", nil},
	{"Dirs.Expect", Operate, false, "watch a worker spawned elsewhere, to record it if its host is lost (Spawn)", nil},
	{"Dirs.Kill", Operate, false, "kill the workers listed in a directory", []string{"recursive", "grace_nanos"}},
	{"Binary.Upload", Operate, false, "store a binary (Spawn)", nil},
	{"Stream.stdin", Operate, false, "write a process's standard input (stdin)", nil},
	{"Stream.stdout", Operate, false, "read a process's standard output (stdout): it consumes", nil},
	{"Stream.stderr", Operate, false, "read a process's standard error (stderr): it consumes", nil},
	{"Stream.chan", Operate, false, "carry a client's sends and receives on a channel, each its own Chan.Send or Chan.Recv (send, recv)", nil},
	{"Stream.run", Operate, true, "run a command and stream its output (run)", []string{"cmd.path", "cmd.args", "cmd.dir", "selector"}},
	{"Stream.get", Operate, false, "copy files from a server (cp)", []string{"file", "local", "entries", "bytes"}},
	{"Stream.put", Operate, false, "copy a file to a server (cp)", []string{"file", "local", "entries", "bytes"}},
	{"Stream.puttar", Operate, false, "copy a tree to a server (cp -r)", []string{"file", "local", "entries", "bytes"}},

	{"Server.Stop", Admin, false, "stop a server (suicide)", nil},
	{"Server.Join", Admin, false, "join a server to another cluster (join)", []string{"url"}},
	{"Server.Revoke", Admin, false, "revoke a credential everywhere (revoke)", []string{"id", "name"}},
	{"Server.Revoked", Admin, false, "list the revoked credentials (revoke -list)", nil},
	{"Server.Keyring", Admin, false, "list or change a server's keys (keyring)", []string{"action", "id"}},
	{"Server.Log", Admin, false, "read a server's operation records, who ran what (log)", nil},
}

var byName = func() map[string]Op {
	m := make(map[string]Op, len(table))
	for _, o := range table {
		if _, dup := m[o.Name]; dup {
			panic("op: " + o.Name + " is in the table twice")
		}
		m[o.Name] = o
	}
	return m
}()

// Lookup finds an operation by name. An operation missing from the table
// is denied to every credential (package server).
func Lookup(name string) (Op, bool) {
	o, ok := byName[name]
	return o, ok
}

// All is the table, in its order.
func All() []Op { return slices.Clone(table) }

// Streams are the names of the streams the table knows (Stream.NAME).
func Streams() []string {
	var out []string
	for _, o := range table {
		if n, ok := strings.CutPrefix(o.Name, "Stream."); ok {
			out = append(out, n)
		}
	}
	return out
}
