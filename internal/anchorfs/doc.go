// Package anchorfs owns the anchor file system of seed 003: global
// directories such as /firehose/clients/spam in which running workers are
// listed, each by a file named with its worker ID (R and 16 hex digits).
//
// # One root, two kinds of names
//
// The namespace's root holds the servers' anchors, /X and 16 hex digits, and
// the anchor file system's top-level directories, any other name. A first
// component starting with X (or x), or parsing as a server ID, is never a
// directory; a component that is a worker ID is a file, never a directory.
// So every path says by its shape which part of the namespace it names.
//
// # No central store
//
// Each server keeps a [Table] of the files of the processes it runs (made
// with Cmd.Dirs). A file exists while its process runs: the server removes
// it when the process exits, and the whole table vanishes from listings
// when the server leaves the membership, crashed or not. A directory exists
// only while some file is below it, anywhere in the cluster; nothing creates
// or removes directories. A listing asks every member for the files below a
// directory and merges the answers with [View]. There is no consensus to
// lose and nothing to clean up: the registry of a worker lives and dies with
// the server that runs it.
package anchorfs
