// Command circuit is both the circuit server (circuit start) and its
// command-line client. Run circuit help for the commands.
package main

import (
	"os"

	"github.com/circuit-project/circuit/internal/cli"
)

func main() {
	os.Exit(cli.Main(&cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, os.Args[1:]))
}
