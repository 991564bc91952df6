package cli

import (
	"flag"
	"fmt"
	"strings"
)

type lsFlags struct{ long bool }

func init() {
	register(&command{
		name:  "ls",
		args:  "PATH",
		short: "list anchors: / lists the servers, /X.../a lists below a, PATH/... lists recursively",
		long: `Prints one absolute path per line, sorted. With -l, each line starts with the
kind of element at the anchor (server, proc, chan, ...; - for none).

Examples:
  circuit ls /
  circuit ls /...
  circuit ls -l /X88550014d4c82e4d/...`,
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
			if err != nil {
				return fmt.Errorf("ls %s: %w", inv.args[0], err)
			}
			var b strings.Builder
			for _, e := range entries {
				if f.long {
					kind := e.Kind
					if kind == "" {
						kind = "-"
					}
					fmt.Fprintf(&b, "%-7s %s\n", kind, e.Path)
				} else {
					b.WriteString(e.Path)
					b.WriteByte('\n')
				}
			}
			_, err = fmt.Fprint(env.Stdout, b.String())
			return err
		},
	})
}
