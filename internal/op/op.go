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
	// joining, and (issue 22) revocation and the keyring.
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
}

// table is every operation, in the order docs/CLI.md lists them.
var table = []Op{
	{"Server.Info", Read, false, "a server's version and identity (version)"},
	{"Server.Members", Read, false, "the cluster's members (every command, to find servers)"},
	{"Server.List", Read, false, "list anchors (ls)"},
	{"Server.Stack", Read, false, "a server's goroutine stacks (stk)"},
	{"Anchor.Get", Read, false, "the kind of the element at an anchor"},
	{"Anchor.Peek", Read, false, "peek at any element"},
	{"Proc.Peek", Read, false, "peek at a process"},
	{"Proc.Wait", Read, false, "wait for a process to exit (wait)"},
	{"Chan.Peek", Read, false, "peek at a channel or subscription"},
	{"Nameserver.Peek", Read, false, "peek at a DNS element"},
	{"Docker.Peek", Read, false, "peek at a container"},
	{"Docker.Wait", Read, false, "wait for a container to exit"},
	{"Dirs.List", Read, false, "list the anchor file system"},
	{"Binary.Stat", Read, false, "whether a server stores a binary (Spawn)"},

	{"Proc.Make", Operate, true, "start a process (mkproc, exec, Spawn)"},
	{"Proc.Signal", Operate, false, "signal a process (signal, kill)"},
	{"Proc.Resize", Operate, false, "resize a process's terminal (exec -t)"},
	{"Docker.Make", Operate, true, "start a container (mkdkr)"},
	{"Docker.Signal", Operate, false, "signal a container"},
	{"Chan.Make", Operate, false, "make a channel or a subscription (mkchan, mk@join, mk@leave)"},
	{"Chan.Send", Operate, false, "send on a channel (send)"},
	{"Chan.Recv", Operate, false, "receive from a channel or subscription (recv): it consumes"},
	{"Chan.Close", Operate, false, "close a channel (close)"},
	{"Nameserver.Make", Operate, false, "make a DNS element (mkdns)"},
	{"Nameserver.Set", Operate, false, "set a resource record (set)"},
	{"Nameserver.Unset", Operate, false, "remove resource records (unset)"},
	{"Anchor.Scrub", Operate, false, "remove an element (scrub)"},
	{"Dirs.Kill", Operate, false, "kill the workers listed in a directory"},
	{"Binary.Upload", Operate, false, "store a binary (Spawn)"},
	{"Stream.stdin", Operate, false, "write a process's standard input (stdin)"},
	{"Stream.stdout", Operate, false, "read a process's standard output (stdout): it consumes"},
	{"Stream.stderr", Operate, false, "read a process's standard error (stderr): it consumes"},
	{"Stream.run", Operate, true, "run a command and stream its output (run)"},
	{"Stream.get", Operate, false, "copy files from a server (cp)"},
	{"Stream.put", Operate, false, "copy a file to a server (cp)"},
	{"Stream.puttar", Operate, false, "copy a tree to a server (cp -r)"},

	{"Server.Stop", Admin, false, "stop a server (suicide)"},
	{"Server.Join", Admin, false, "join a server to another cluster (join)"},
	{"Server.Revoke", Admin, false, "revoke a credential everywhere (revoke)"},
	{"Server.Revoked", Admin, false, "list the revoked credentials (revoke -list)"},
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
