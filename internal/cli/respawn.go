package cli

import (
	"flag"
	"fmt"
	"time"

	"github.com/circuit-project/circuit/client"
)

type respawnFlags struct {
	binary string
	grace  time.Duration
}

func respawnCmd() *command {
	return &command{
		name:  "respawn",
		exits: "3 when no worker matched.",
		args:  "DIR[/...]",
		short: "replace the workers listed in a directory with new ones, one at a time (a new build)",
		long: `Replaces each live worker listed in a directory of the anchor file system (or
anywhere below it when the path ends in /...), one at a time, in the order
of their files. A new worker runs the same function with the same arguments
and directories on the same server, from the binary FILE given by -binary
(uploaded once to each server and kept there by its digest) or from the old
worker's own binary. Once the new worker runs its function, the old one is
asked to stop (SIGTERM: its circuit.Context ends) and killed if it has not
returned after -grace; the next worker is replaced once it has exited. The
old worker's graveyard record says "replaced by ID".

A worker replaced without interruption returns once its context ends, and
holds no request it has taken and not answered then. A new worker that fails
before it runs its function (the binary lacks the function, say) stops the
respawn with its cause and stderr: the old worker keeps running. Prints one
line per replacement. Exits with 3 when no worker matched.

Examples:
  circuit respawn /service/...
  circuit respawn -binary ./service-v2 -grace 10s /service/...`,
		dial: true,
		json: `One JSON object: Replaced, each replacement as {Old, New, Anchor, Serial,
Binary}: the old and new workers' IDs, the new one's anchor, its process's
serial and its binary's SHA-256.`,
		flags: func(fs *flag.FlagSet) any {
			f := &respawnFlags{}
			fs.StringVar(&f.binary, "binary", "", "start the new workers from this program `FILE` (uploaded once per server) rather than each worker's own binary")
			fs.DurationVar(&f.grace, "grace", 10*time.Second, "how long an old worker has to return once asked to stop before it is killed, `DURATION` (at most 1m; 0 kills at once)")
			return f
		},
		run: runRespawn,
	}
}

func runRespawn(env *Env, inv *invocation) error {
	f := inv.opts.(*respawnFlags)
	if len(inv.args) != 1 {
		return usagef("respawn takes one directory, e.g. circuit respawn /service/...")
	}
	if f.grace < 0 || f.grace > time.Minute {
		return usagef("-grace %v: want 0 to 1m", f.grace)
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	dir := inv.args[0]
	opts := client.RespawnOpts{Binary: f.binary, Grace: f.grace}
	if !env.jsonOut {
		opts.Replaced = func(r client.Replacement) {
			fmt.Fprintf(env.Stdout, "%s replaced by %s at %s\n", r.Old, r.New, r.Anchor)
		}
	}
	done, err := c.Respawn(env.Ctx, dir, opts)
	if env.jsonOut {
		if done == nil {
			done = []client.Replacement{}
		}
		if perr := printJSON(env, struct{ Replaced []client.Replacement }{done}); perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return err
	}
	if len(done) == 0 {
		return fmt.Errorf("%w: no worker is listed in %s", client.ErrNotFound, dir)
	}
	return nil
}
