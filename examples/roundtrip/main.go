// Command roundtrip is seed 001's first example, as it reads with package
// circuit: a channel stretched between this program and a function it
// spawns on another host.
//
//	go run ./examples/roundtrip [-d URL] [-host Xid]
//
// The dial-in server is -d, or the URL in the file $CIRCUIT names; the key,
// if the cluster has one, is in the file $CIRCUIT_HMAC names.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/circuit-project/circuit"
)

// ping runs on the remote host: it sends 1 back on the stretched channel.
func ping(feedback circuit.Chan[int]) error {
	return feedback.Send(1)
}

func init() { circuit.Register(ping) }

func main() {
	circuit.Main() // first thing: in a spawned worker, this runs ping
	addr := flag.String("d", "", "dial-in server `URL` (default: the URL in the file $CIRCUIT names)")
	host := flag.String("host", "", "server `ID` to spawn on (default: any)")
	flag.Parse()
	if _, err := circuit.ConnectEnv(context.Background(), *addr); err != nil {
		fail(err)
	}

	feedback, err := circuit.MakeChan[int]("", 0)
	if err != nil {
		fail(err)
	}
	defer feedback.Scrub()
	w, err := circuit.Spawn(*host, nil, ping, feedback)
	if err != nil {
		fail(err)
	}
	if _, err := feedback.Recv(); err != nil {
		fail(err)
	}
	fmt.Printf("Roundtrip complete (worker %s on %s).\n", w.ID(), w.Server())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "roundtrip:", err)
	os.Exit(1)
}
