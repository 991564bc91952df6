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
//   - A query for a name and type gets every record of that name and type
//     (or all of the name's records for ANY). A name that has a CNAME but no
//     record of the asked type gets the CNAME, followed by the target's
//     records when they are here too. A name that has records, none of the
//     asked type, gets an empty answer (NODATA); an unknown name gets
//     NXDOMAIN. Answers are authoritative.
//   - Peek returns the address and the records grouped by name.
//   - Scrub stops both listeners and frees the port.
package nameserver
