package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/circuit-project/circuit/client"
)

type killFlags struct {
	verbose bool
	grace   time.Duration
}

func killCmd() *command {
	return &command{
		name:  "kill",
		exits: "3 when no worker matched.",
		args:  "DIR[/...]...",
		short: "kill the workers listed in anchor-file-system directories (seed 003's 4kill)",
		long: `Kills, with SIGKILL, every worker listed in each directory of the anchor file
system, or anywhere below it when the path ends in /..., on every server. It
returns once they have exited, so their files are gone. A path ending in a
worker ID kills that worker. With -grace D, each worker is first asked to
stop (SIGTERM, which cancels circuit.Context in a worker, so that a function
that watches it can return) and killed only if it is still running after
D. With -v, prints the files of the killed workers. Exits with 3 when no
worker matched.

Examples:
  circuit kill /firehose/clients/spam/...
  circuit kill /firehose/clients/...
  circuit kill /firehose/clients/spam/R6aca01d945c3b861
  circuit kill -grace 10s /firehose/clients/...`,
		dial: true,
		json: `One JSON object: Killed, the files of the killed workers, each as ls -json
prints a path (Path, Kind, Server, Anchor). -json implies -v.`,
		flags: func(fs *flag.FlagSet) any {
			f := &killFlags{}
			fs.BoolVar(&f.verbose, "v", false, "print the files of the killed workers")
			fs.DurationVar(&f.grace, "grace", 0, "ask the workers to stop first (SIGTERM: circuit.Context ends in a worker), and kill them only after `DURATION` (at most 1m)")
			return f
		},
		run: runKill,
	}
}

func runKill(env *Env, inv *invocation) error {
	f := inv.opts.(*killFlags)
	if len(inv.args) == 0 {
		return usagef("kill takes one or more directories, e.g. circuit kill /firehose/clients/...")
	}
	if f.grace < 0 || f.grace > time.Minute {
		return usagef("-grace %v: want 0 to 1m", f.grace)
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	matched := 0
	var errs []error
	killedAll := []entryJSON{}
	for _, path := range inv.args {
		killed, err := c.KillGrace(env.Ctx, path, f.grace)
		var incomplete *client.IncompleteError
		if err != nil && !errors.As(err, &incomplete) {
			return fmt.Errorf("kill %s: %w", path, err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("kill %s: %w", path, err))
		}
		matched += len(killed)
		for _, e := range killed {
			killedAll = append(killedAll, toEntryJSON(e))
		}
		if f.verbose && !env.jsonOut {
			for _, e := range killed {
				fmt.Fprintln(env.Stdout, e.Path)
			}
		}
	}
	if env.jsonOut {
		if err := printJSON(env, struct{ Killed []entryJSON }{killedAll}); err != nil {
			return err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if matched == 0 {
		return fmt.Errorf("kill: %w: no worker is listed in %s", client.ErrNotFound, strings.Join(inv.args, " "))
	}
	return nil
}
