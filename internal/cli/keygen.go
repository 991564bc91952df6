package cli

import (
	"fmt"

	"github.com/circuit-project/circuit/internal/security"
)

func keygenCmd() *command {
	return &command{
		name:  "keygen",
		short: "print a new random cluster key (save it to a file for -hmac)",
		long: `The key is 32 random bytes, base64-encoded. Save it to a file, give every
server and client that file with -hmac FILE (or $CIRCUIT_HMAC), and all
traffic is authenticated and encrypted:

  circuit keygen > ~/.circuit-key && chmod 600 ~/.circuit-key`,
		json: "One JSON object: Key, the new key as it would be printed without -json.",
		run:  runKeygen,
	}
}

func runKeygen(env *Env, inv *invocation) error {
	if len(inv.args) != 0 {
		return usagef("keygen takes no arguments")
	}
	key := security.Generate()
	if env.jsonOut {
		return printJSON(env, struct{ Key string }{key})
	}
	_, err := fmt.Fprintln(env.Stdout, key)
	return err
}
