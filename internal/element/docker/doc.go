// Package docker is the docker element: a container run by a circuit server
// on the Docker engine of its host, on behalf of a client, with its standard
// streams reachable from anywhere in the cluster like those of a process
// element (package proc). It holds semantics only; the server carries the
// bytes, with the same stream methods as for a process.
//
// An Engine is the connection to the local engine (found as the docker
// command finds it: DOCKER_HOST and friends, else the local socket). A
// server with -docker makes one, and Start makes the containers.
//
// The contract:
//
//   - The image must be on the host already. It is never pulled: a missing
//     image is an error from Start (wrapping ErrImageNotFound) that says to
//     load it with docker load or docker import.
//   - The command is Path followed by Args. An empty Path keeps the image's
//     command (Args, if any, then go to the image's entrypoint); Entry
//     replaces the image's entrypoint. Env is added to the image's
//     environment. Memory and CpuShares are the engine's limits of the same
//     names. Volume entries without a colon are anonymous volumes, removed
//     with the container; the others are bind mounts, host:container[:ro].
//     Lxc is obsolete (Docker dropped its LXC driver): it is accepted and
//     ignored, and Start returns a warning saying so, along with the
//     engine's own warnings.
//   - A program that is not in the image is an error from Start, as far as
//     it can be told before the start (not for programs in volumes, or
//     behind the image's entrypoint). When Start fails, no container is left.
//   - Containers are named "circuit-" + the anchor path + a random suffix,
//     and labelled with the anchor path (Label). The engine's init process
//     runs as PID 1 and the command under it, so that a signal acts on the
//     command as on a process (a command as PID 1 would ignore SIGTERM), and
//     orphans are reaped. Exit codes are the engine's: 128+signal when a
//     signal ended the command.
//   - Each standard stream has at most one client at a time; a second
//     concurrent one gets proc.ErrBusy, and a stream that has ended
//     proc.ErrClosed. stdout and stderr come from the engine multiplexed on
//     one connection, attached before the start so that nothing is missed,
//     and are split into a pipe each. When nobody reads them, the container
//     blocks on write once the pipe and the engine's buffers are full, as a
//     process does; as the two share the connection, an unread stdout holds
//     up stderr too, and the reverse. A reader that goes away leaves the
//     stream discarded: the rest is read and thrown away, so the container
//     never blocks on it again. The output streams end (EOF) when the
//     container's output ends, at its exit. stdin is closed in the container
//     when its writer sends EOF, and cannot be reopened; until then it stays
//     open, and a read from it waits.
//   - Peek returns the engine's description of the container (what docker
//     inspect prints) as JSON. Stat is the circuit's summary and never
//     blocks. Wait blocks until the container has exited and its status is
//     known.
//   - Scrub aborts: the streams are cut (readers get what is buffered, then
//     EOF), and the container is killed and removed, with its anonymous
//     volumes. It returns once the engine has answered (within a bound).
//     With Config.Scrub the server removes the element by itself when the
//     container exits, and scrubs it once its output is read; without, an
//     exited container stays on the engine, for Peek, until the element is
//     scrubbed.
//   - When the server stops, it stops every container: SIGTERM, SIGKILL
//     after a grace period (docker stop), with unread output discarded,
//     then removal. If the server itself is killed, its containers keep
//     running without it: their stdin is closed, and their output goes only
//     to the engine's log driver. They keep their label.
//   - Output also goes to the engine's log driver, as configured on the
//     engine (docker logs shows it while the container exists).
package docker
