// Package console owns the web console of a circuit server (circuit start
// -http ADDR): one page, served from assets embedded in the binary, that
// shows the cluster live.
//
// What it shows:
//
//   - the members, with address, labels, datacenter and health. The member
//     list is read in-process from the server's own view (no operation is
//     logged for it). A member that leaves the view is shown as "failed"
//     for Config.FailedFor (15 s by default) and then removed: the
//     membership does not say whether a server left gracefully or died, so
//     every departure is shown the same way. The servers do not expose
//     memberlist's suspicion, so there is no "suspect" state.
//   - the namespace as a tree: a server's anchors are listed when it is
//     opened, each with its element's kind; clicking an element shows its
//     peek document (a channel's counters are its peek).
//   - a process's (or container's) stdout and stderr, followed live. The
//     console is then that stream's one reader (package proc's contract):
//     when the page stops following, the stream is closed and the rest of
//     the output is discarded, as for any reader that goes away.
//   - the tail of the server's operation log (package oplog).
//
// Everything but the member list and the operation log goes through the
// public client library (package client), dialled to the console's own
// server with the cluster key, exactly as the circuit tool does.
//
// Live updates are server-sent events. The member list and the log tail are
// polled (twice a second) by one goroutine that runs only while at least one
// page is connected, so an idle server with no browser never wakes for the
// console.
//
// Writes (mkproc, signal, scrub) are POST requests, refused with 403 unless
// the console was started with Config.Write (-http-write), and refused
// without the X-Circuit-Console header, which a cross-site form cannot set.
// With a cluster key, every request needs the token Token derives from the
// key (circuit console-token), given once as ?token= or on the login page
// and then kept in a cookie; without it the answer is 401 and nothing else.
package console
