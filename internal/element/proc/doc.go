// Package proc is the process element: an OS process started by a circuit
// server on behalf of a client, with its standard streams reachable from
// anywhere in the cluster. It holds semantics only; the server carries the
// bytes.
//
// The contract:
//
//   - Start runs the command in a process group of its own (Setpgid), so a
//     signal reaches the process and every child it started. A binary that
//     cannot be started is an error from Start, and no element exists.
//   - A goroutine waits for every process, so there are no zombies. Exit is
//     recorded as a code, or as the signal that killed the process (reported
//     as exit code 128+signal, as shells do).
//   - Each standard stream has at most one client at a time; a second
//     concurrent one gets ErrBusy. stdout and stderr are pipes: when nobody
//     reads them, the process blocks on write once the pipe is full, as on
//     POSIX. A reader that goes away (closes, or its connection breaks)
//     leaves the stream discarded: the rest of its output is read and thrown
//     away, so the process never blocks on it again. stdin is closed when its
//     writer sends EOF; a closed stdin cannot be reopened.
//   - Peek never blocks. Wait blocks until the process has exited and its
//     status is known.
//   - Scrub aborts: it sends SIGKILL to the process group and the element is
//     gone. With Cmd.Scrub the server removes the element by itself once the
//     process has exited and its output has been read, or at most 30 s after
//     the exit if nobody reads it (the final status stays available to Wait
//     for a while, see the server).
//   - When the server stops, it scrubs every process: SIGTERM to the group,
//     then SIGKILL after a grace period. If the server itself is killed with
//     SIGKILL, its processes keep running but lose their pipes: a write to
//     stdout or stderr then fails with EPIPE (or SIGPIPE).
package proc
