// Package anchor owns the circuit namespace on one server: the syntax of
// anchor paths and the tree of anchors a server keeps below its own anchor.
// It does no I/O; transports and element kinds build on it.
//
// # Paths
//
// A path names an anchor in the global namespace, for example
//
//	/X88550014d4c82e4d/hi/charlie
//
// "/" is the root, whose children are the servers. The first component is
// the ID of the server hosting the anchor (X and 16 hex digits, see package
// ident); the components below it are anchors on that server. A last
// component "..." means "this anchor and all its descendants", as in
// "circuit ls /...". [Parse] enforces these rules, and every violation is an
// error wrapping [ErrBadPath] that names the path and the problem:
//
//   - the path starts with "/" and is at most 4096 bytes long;
//   - no component is empty (a single trailing slash is ignored);
//   - no component is "." or "..";
//   - "..." appears only as the last component;
//   - no component holds control characters (NUL included) or invalid
//     UTF-8, and none is longer than 255 bytes;
//   - the first component is a valid server ID (the error then also wraps
//     ident.ErrBadID).
//
// [Path.String] gives the canonical form: the ID as X and lowercase hex, no
// trailing slash, "/..." when recursive. Parsing it again gives the same Path.
//
// # The tree
//
// Each server keeps one [Tree] for the anchors below its own anchor. An anchor
// holds at most one element (a process, a channel, ...); attaching to an
// occupied anchor fails with an [*OccupiedError] naming the kind already there.
// An anchor exists only while it holds an element or has a descendant that
// does: [Tree.Set] creates the anchors on the way down and [Tree.Remove]
// prunes those left empty on the way up, so the tree never holds an empty
// anchor. The server anchor itself stands for the server element and is not
// stored; attaching to it is an error.
//
// [Tree.Reserve] claims an anchor for an element that is slow to make (a
// process that must start first): the anchor is occupied and listed with the
// reserved kind, but [Tree.Get] does not return it, until the release
// function attaches the real element or drops the claim.
//
// Elements are compared by identity (==), so they must be comparable values;
// pointers are the natural choice. A Tree is safe for concurrent use: one
// mutex guards it, held only for the in-memory operation. The tree asks an
// element for its Kind once, in Set or release, before taking the mutex, and
// never calls into an element while holding it.
package anchor
