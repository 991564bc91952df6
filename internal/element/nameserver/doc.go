// Package nameserver is the DNS element: a DNS server, on UDP and TCP at
// one address, answering from resource records set and unset at run time.
//
// The contract:
//
//   - Records are written in the canonical zone-file syntax of the RFCs
//     ("miek.nl. 3600 IN MX 10 mx.miek.nl."), parsed by github.com/miekg/dns;
//     a record that does not parse is an error that says why. Names are
//     fully qualified and compared without regard to case. Setting a record
//     that is already there changes nothing.
//   - Unset removes every record of a name.
//   - A query for a name and type gets every record of that name and type.
//     A name that has a CNAME but no record of the asked type gets the
//     CNAME, followed by the target's records when they are here too. A
//     name that has records, none of the asked type, gets an empty answer
//     (NODATA); an unknown name gets NXDOMAIN. Answers are authoritative.
//   - ANY is answered minimally (RFC 8482), over UDP and TCP alike: with
//     one RRset, that of the type of the name's first record (the first
//     set and not since unset), as if that type had been asked; never with
//     all of the name's records. An unknown name gets NXDOMAIN.
//   - A query with an EDNS0 OPT record gets an answer with an OPT record,
//     which advertises 1232 bytes and echoes the DO bit; an EDNS version
//     other than 0 gets BADVERS.
//   - A UDP answer is at most min(S, 3 × Q) bytes on the wire, where Q is
//     the query's size on the wire (as read: a query is read into 512
//     bytes) and S is 512 bytes, or, for a query
//     with an OPT record, the UDP size it advertises, counted as 512 below
//     512 and capped at 1232 (the DNS flag day 2020 figure): no UDP query
//     is amplified more than 3 times. An answer that does not fit has the
//     TC bit set and the client asks again over TCP, which gets the whole
//     answer (up to a DNS message's 64 KiB). Above 512 bytes the answer
//     keeps the records that fit (miekg/dns's Msg.Truncate); below 512 it
//     is whole or has no records. The bound is also checked on every UDP
//     datagram sent, the library's own error answers included: a datagram
//     over it is not sent.
//   - UDP answers are rate-limited per source address (TCP needs a
//     handshake, so its source cannot be spoofed, and is not limited): a
//     token bucket per address, 100 answers a second and 200 at once,
//     in a table of at most 4096 addresses from which the least recently
//     seen is forgotten first (a forgotten address starts with a full
//     bucket). Of the answers over the rate, every second one (the 2nd,
//     the 4th, ...) is sent with no records and the TC bit set, so that a
//     real client goes to TCP, and the others are dropped (BIND's RRL with
//     slip 2): a spoofed victim gets at most the rate in answers, and
//     beyond it empty ones for half the queries, each no bigger than the
//     answer it stands for. The limit counts every UDP datagram sent, the
//     library's own error answers included.
//   - Peek returns the address and the records grouped by name.
//   - Scrub stops both listeners and frees the port.
package nameserver
