// Package kind owns the names of the kinds of element: what an anchor below
// a server holds (a process, a channel, ...), the server's own anchor, and
// the two kinds of entry of the anchor file system. They are the strings
// the wire carries (api.Entry.kind, api.PeekReply.kind), `circuit ls`
// prints and the metrics label; every layer names a kind by these
// constants, never by a literal.
//
// Adding a kind of element starts here (docs/ARCHITECTURE.md, "Adding an
// element kind"): its constant, and its place in Elements.
package kind

// Kind names a kind of element or anchor-file-system entry.
type Kind string

// The kinds.
const (
	Server Kind = "server" // a server's own anchor, /Xid
	Proc   Kind = "proc"   // a process (internal/element/proc)
	Chan   Kind = "chan"   // a channel (internal/element/channel)
	DNS    Kind = "dns"    // a DNS server (internal/element/nameserver)
	Docker Kind = "docker" // a container (internal/element/docker)
	Join   Kind = "@join"  // a subscription to the servers that join
	Leave  Kind = "@leave" // a subscription to the servers that leave or fail

	Dir    Kind = "dir"    // anchor file system: a directory with a worker below it
	Worker Kind = "worker" // anchor file system: a worker's file in a directory
)

// Elements returns the kinds of element an anchor below a server can hold,
// in a fixed order.
func Elements() []Kind { return []Kind{Proc, Chan, DNS, Docker, Join, Leave} }

// String is the kind's name.
func (k Kind) String() string { return string(k) }
