package cli

import (
	"fmt"

	"github.com/circuit-project/circuit/internal/security"
)

func init() {
	register(&command{
		name:  "keygen",
		short: "print a new random cluster key (save it to a file for -hmac)",
		long: `The key is 32 random bytes, base64-encoded. Save it to a file, give every
server and client that file with -hmac FILE (or $CIRCUIT_HMAC), and all
traffic is authenticated and encrypted:

  circuit keygen > ~/.circuit-key && chmod 600 ~/.circuit-key`,
		run: func(env *Env, inv *invocation) error {
			if len(inv.args) != 0 {
				return usagef("keygen takes no arguments")
			}
			_, err := fmt.Fprintln(env.Stdout, security.Generate())
			return err
		},
	})
}
