// Package footprint keeps an idle server's resident memory small.
//
// Most of an idle circuit server's resident set is not heap but pages of
// its own executable: package initialisation and start-up touch code all
// over the binary, and the kernel's fault-around maps the neighbours of
// every page touched. Those pages stay mapped though the server will not
// run that code again. Trim, called once the server is up, tells the kernel
// that the executable's code is read at random (no fault-around from then
// on) and drops its mappings of the code, so that what stays resident is
// what the server actually runs while idle. The pages remain in the page
// cache; code that runs again faults them back in, cheaply.
//
// Keep, run for the server's life, trims again whenever the server has
// grown (joins, requests, transfers) and then gone quiet, and returns the
// Go heap's free pages to the kernel at the same time.
//
// Only the executable mapping of code (r-xp) is dropped: it is never
// written, so dropping it loses nothing. Writable or relocated mappings are
// left alone.
package footprint
