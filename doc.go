// Package circuit spawns Go functions on the hosts of a circuit cluster, as
// seed 001 describes, and stretches typed channels between them.
//
//	func roundTrip(feedback circuit.Chan[int]) error {
//		return feedback.Send(1)
//	}
//
//	func init() { circuit.Register(roundTrip) }
//
//	func main() {
//		circuit.Main() // first thing: a spawned worker runs its function here
//		circuit.Dial(os.Args[1], nil)
//		feedback, _ := circuit.MakeChan[int]("", 0)
//		circuit.Spawn("", nil, roundTrip, feedback)
//		feedback.Recv()
//		println("Roundtrip complete.")
//	}
//
// # How a spawn runs
//
// Everything is built on the circuit's own elements. [Spawn] runs the
// function in a new process of the same program (the same binary, byte for
// byte) on the chosen server:
//
//  1. The program's binary is uploaded to that server once, into its
//     content-addressed store (under -var), and its SHA-256 digest checked.
//  2. A process element is made at /Xserver/Rworker, named by the new
//     worker's ID, listed in the anchor-file-system directories the spawner
//     chose, and scrubbed when it exits.
//  3. The function's name and its JSON-encoded arguments go to the worker
//     on its standard input (the server keeps them while it runs, up to
//     1 MiB, for a respawn). [Main] reads them, tells the server it runs,
//     calls the function, and writes its JSON-encoded results to file
//     descriptor 3, which the server keeps as the process's result.
//
// Functions are found by name, so both sides must be the same program and
// every spawnable function must be [Register]ed, at init time, before
// [Main] runs. Closures are allowed but carry nothing they capture: pass
// what the worker needs as arguments.
//
// A worker is an ordinary circuit process. `circuit ls /Xserver/...` shows
// it, peek describes it, its stdout and stderr can be read, signal and
// scrub stop it. It dies with its server. Its stdout and stderr wait in
// pipes until someone reads them (Worker.Output, `circuit stdout`), so a
// worker that writes more than a pipe holds (1 MiB) unread blocks, and a
// dead worker's element stays until its output is read, or 30 s. The anchor file system (package
// doc of internal/anchorfs, and `circuit ls /dir/...`, `circuit kill
// /dir/...`) lists it under every directory it was spawned with until it
// dies, for any reason.
//
// # Replacing workers without interruption
//
// [Respawn] (and `circuit respawn [-binary FILE] [-grace D] DIR/...`)
// replaces running workers, one at a time, with new ones running the same
// function with the same arguments, directories and server, from another
// build of the program or the same one. Each old worker is asked to stop
// only once its successor runs its function: its [Context] ends, and it has
// the grace period to return before it is killed. Its graveyard record
// says "replaced by" its successor.
//
// The circuit keeps the service up; only the worker can keep its requests.
// A worker is replaced without interruption when it returns once its
// context ends, and holds no request it has taken and not answered when it
// does. With a [Chan] of requests that is a loop that answers whatever
// RecvContext returned before it looks at the context again: a receive cut
// short by the context has taken nothing, so the request goes to another
// worker (examples/upgrade).
//
// # Channels
//
// A [Chan] is a circuit channel element carrying JSON-encoded values of
// one type. It encodes as its path, so it can be passed to a worker as an
// argument and used there as in the spawner.
package circuit
