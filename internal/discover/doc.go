// Package discover owns how circuit servers and clients find each other by
// UDP multicast on a local network: the wire format of discovery packets
// (announce and query, optionally authenticated with HMAC-SHA256), the
// server-side loop that announces a server's URL and answers queries (Serve),
// and the client-side search for any server (Find).
//
// Discovery only reports URLs; deciding what to do with them (joining a
// membership, dialing a server) belongs to the caller. Packets are sent only
// by Serve and Find, never implicitly.
package discover
