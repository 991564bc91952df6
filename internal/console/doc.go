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
//   - on a writable console, and only when asked, a process's (or
//     container's) stdout and stderr, followed live (see the rules below).
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
// # Rules
//
// Who may ask. Every request's Host must be one the console answers to,
// whatever address it is bound to: loopback addresses and localhost always;
// bound beyond loopback, also the bound IP (every address of the machine
// for 0.0.0.0 or ::) and the machine's host name (os.Hostname); and the
// names of Config.Hosts (-http-host). A request with an Origin header, and
// every POST (which must have one), is refused unless the Origin is the
// console's own: the same host and port as the Host, with the scheme it is
// served with. A request to /api/ that the browser marks as of another site
// (Sec-Fetch-Site) is refused too. Each refusal is a 403 that names the
// refused Host or Origin. This stops DNS rebinding and cross-site requests.
//
// Writes (mkproc, signal, scrub) are POST requests, refused with 403 unless
// the console was started with Config.Write (-http-write), and refused
// without the X-Circuit-Console header, which a cross-site form cannot set.
//
// Login. With a cluster key, every request needs a session. The token
// (Token: the HMAC-SHA256 of "token" under security.Key.ConsoleKey, itself
// derived from the key by HKDF; circuit console-token prints it) is given
// once, at POST /login (the login page's form) or in a first GET with
// ?token=, and exchanged for a session: a random ID of 32 bytes, held in
// this console's memory only and set as an HttpOnly, SameSite=Strict cookie
// (Secure over TLS). The cookie never holds the token. A GET with a valid
// ?token= is answered 303 to the same address without the token (its other
// parameters kept), so the token leaves the address bar and the history at
// once; a wrong token is 401 and nothing else. Tokens are compared in
// constant time. A session ends after 12 hours without a request, and the
// table holds at most 1024 (the least recently used goes first); a restarted
// console knows none.
//
// A credential's token (CredentialToken; circuit console-token -cred FILE)
// opens a session with the credential's role: its certificate, an expiry
// and the credential's signature over both, checked against the server's
// keyring (Config.Ring) and its revocations (Config.Admit), so the console
// learns nothing that lets it act as the holder. A read credential's
// session is read-only whatever -http-write says: no writes, no output,
// environments hidden; operate and admin get the writes -http-write allows.
// The console acts through its key-dialled client, so it applies the role
// itself; a credential limited to some servers or a subtree is refused,
// since the console shows the whole cluster. Each session opened is logged
// with whose it is.
//
// Read-only viewers consume nothing. A process's stdout and stderr have one
// reader each (package proc), and reading them takes them: so a read-only
// console (without -http-write), or session (a read credential's), never
// opens them. It shows of a process
// only what peek gives, and /api/stream answers 403. A writable console's
// user may act on the process anyway, so the page offers its output behind
// an explicit button ("read stdout (takes it)") and opens it only then; it
// is then that stream's one reader, and when the page stops following, the
// stream is closed and the rest of the output is discarded.
//
// Read-only viewers do not see the environment: the peek documents of a
// process or container that a read-only console returns (/api/peek) have
// every Env replaced by how many variables it holds. A writable console,
// whose user may start processes anyway, shows it.
//
// Transport. A console bound beyond loopback over plain HTTP warns once at
// start, on the server's log: the token, the session cookie and all it
// shows travel in the clear. With Config.TLSCert and TLSKey (-http-tls
// CERT,KEY) it is served over HTTPS only, its cookie is Secure, and its
// answers carry Strict-Transport-Security.
package console
