// Package server is the circuit daemon. It owns the server's one listener,
// its identity, its membership in the cluster, its part of the anchor
// namespace, and the connections it relays for clients of other servers.
//
// Every connection to the port opens with a preamble (package wire). Gossip
// streams go to membership; RPC connections meant for this server go, after
// TLS when keyed, to the gRPC services; connections meant for another member
// are relayed to that member's advertised address and spliced. A relay never
// connects to an address a client named, only to members named by ID.
//
// Lifecycle: Start binds and begins serving; Stop (also on the Stop RPC,
// which is `circuit suicide`) leaves the cluster gracefully, so the others
// drop this server at once, then closes every connection and waits for every
// goroutine it started. Stop is idempotent.
package server
