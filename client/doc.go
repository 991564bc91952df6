// Package client is the Go client library of circuit: everything a program
// can do to a circuit cluster, from any one machine.
//
// A client dials into one server (the dial-in server) and reaches every
// other server through it: the dial-in server splices the client's
// connections through to the server that hosts an anchor, and with a key in
// use TLS runs end to end, so the relay never sees the traffic.
//
// The package offers two styles over the same connections.
//
// The seeds' style: Dial, DialDiscover, and the Anchor interface (Walk,
// View, Get, Scrub, ...). As the seeds document, these report a lost
// connection by panicking; the panic value is a *HostLostError when the
// server hosting the anchor is gone, and a *DialinLostError when the client's
// own dial-in server is gone, so a recover can tell the two apart:
//
//	defer func() {
//		if r := recover(); r != nil {
//			var lost *client.HostLostError
//			if err, ok := r.(error); ok && errors.As(err, &lost) {
//				// only that host is gone; the client is still usable
//			}
//		}
//	}()
//
// The context style: Connect and methods taking a context.Context and
// returning errors (List, Members, ServerInfo, ...). The circuit command-line
// tool is built on these alone.
package client
