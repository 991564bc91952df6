package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/label"
)

type lsFlags struct{ long bool }

func init() {
	register(&command{
		name:  "ls",
		args:  "PATH",
		short: "list anchors: / lists the servers, /X.../a lists below a, PATH/... lists recursively",
		long: `Prints one absolute path per line, sorted. With -l, each line starts with the
kind of element at the anchor (server, proc, chan, ...; - for none), and a
server's line ends with its datacenter (dc=west) and labels (role=db,zone=a).

A path whose first component is not a server ID is in the anchor file system
(seed 003): directories such as /firehose/clients in which spawned workers
are listed by their IDs, across all servers. Such a listing starts with the
directory itself, then its files and subdirectories; with /... everything
below. With -l, a worker's line ends with its process element. / lists only
the servers; /... lists every server's anchors and the whole anchor file
system. If some servers do not answer, ls prints what the others answered,
names the silent ones on standard error and exits with 1.

Examples:
  circuit ls /
  circuit ls /...
  circuit ls -l /X88550014d4c82e4d/...
  circuit ls /firehose/clients
  circuit ls /firehose/clients/...`,
		dial: true,
		flags: func(fs *flag.FlagSet) any {
			f := &lsFlags{}
			fs.BoolVar(&f.long, "l", false, "show the kind of element beside each path")
			return f
		},
		run: func(env *Env, inv *invocation) error {
			f := inv.opts.(*lsFlags)
			if len(inv.args) != 1 {
				return usagef("ls takes one path, e.g. circuit ls /")
			}
			c, err := connect(env, inv)
			if err != nil {
				return err
			}
			entries, err := c.List(env.Ctx, inv.args[0])
			var incomplete *client.IncompleteError
			if err != nil && !errors.As(err, &incomplete) {
				return fmt.Errorf("ls %s: %w", inv.args[0], err)
			}
			var b strings.Builder
			for _, e := range entries {
				if !f.long {
					b.WriteString(e.Path)
					b.WriteByte('\n')
					continue
				}
				kind := e.Kind
				if kind == "" {
					kind = "-"
				}
				fmt.Fprintf(&b, "%-7s %s", kind, e.Path)
				if e.Anchor != "" {
					b.WriteString(" -> " + e.Anchor)
				}
				if e.DC != "" {
					b.WriteString("  dc=" + e.DC)
				}
				if len(e.Labels) > 0 {
					b.WriteString("  " + label.Set(e.Labels).String())
				}
				b.WriteByte('\n')
			}
			if _, werr := fmt.Fprint(env.Stdout, b.String()); werr != nil {
				return werr
			}
			if err != nil {
				return fmt.Errorf("ls %s: the listing is incomplete: %w", inv.args[0], err)
			}
			return nil
		},
	})
}
