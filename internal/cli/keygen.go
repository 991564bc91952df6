package cli

import (
	"fmt"
	"os"

	"github.com/circuit-project/circuit/internal/security"
)

func keygenCmd() *command {
	return &command{
		name:  "keygen",
		short: "print a new random cluster key (save it to a file for -hmac)",
		long: `The key is 32 random bytes, base64-encoded. Save it to a file, give every
server and client that file with -hmac FILE (or $CIRCUIT_HMAC), and all
traffic is authenticated and encrypted. When standard output is a file, keygen
makes it private (mode 600), since servers refuse a key file that group or
others may read:

  circuit keygen > ~/.circuit-key`,
		json: "One JSON object: Key, the new key as it would be printed without -json.",
		run:  runKeygen,
	}
}

func runKeygen(env *Env, inv *invocation) error {
	if len(inv.args) != 0 {
		return usagef("keygen takes no arguments")
	}
	key := security.Generate()
	if err := privateStdout(env); err != nil {
		return fmt.Errorf("keygen: making the key file private: %w", err)
	}
	if env.jsonOut {
		return printJSON(env, struct{ Key string }{key})
	}
	_, err := fmt.Fprintln(env.Stdout, key)
	return err
}

// privateStdout makes standard output private (mode 600) when it is a
// file: a file made by "circuit keygen > FILE" has the shell's mode, most
// often 644, and servers refuse a key or credential file that group or
// others may read. It runs before the secret is written.
func privateStdout(env *Env) error {
	if f, ok := env.Stdout.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return f.Chmod(0o600)
		}
	}
	return nil
}
