package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/label"
)

type lsFlags struct{ long bool }

func lsCmd() *command {
	return &command{
		name:  "ls",
		exits: "1 when some servers did not answer: what the others answered is printed, and the silent ones are named on standard error.",
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
		json: `One JSON object per line, one per path, in the order of the plain listing:
  Path    the absolute path
  Kind    the element's kind (server, proc, chan, @join, @leave, dns, docker;
          dir and worker in the anchor file system), or "" for none
  Server  the ID of the server holding it (for a worker, the server of its
          process); absent for directories of the anchor file system
  Anchor  for a worker, the path of its process element
  DC      for a server, its datacenter, if it has one
  Labels  for a server, its labels, if it has any`,
		flags: func(fs *flag.FlagSet) any {
			f := &lsFlags{}
			fs.BoolVar(&f.long, "l", false, "show the kind of element beside each path")
			return f
		},
		run: runLs,
	}
}

func runLs(env *Env, inv *invocation) error {
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
		if env.jsonOut {
			line, jerr := json.Marshal(toEntryJSON(e))
			if jerr != nil {
				return jerr
			}
			b.Write(line)
			b.WriteByte('\n')
			continue
		}
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
}

// entryJSON is a listed path as ls -json and kill -json print it.
type entryJSON struct {
	Path   string
	Kind   string
	Server string            `json:",omitempty"`
	Anchor string            `json:",omitempty"`
	DC     string            `json:",omitempty"`
	Labels map[string]string `json:",omitempty"`
}

func toEntryJSON(e client.Entry) entryJSON {
	out := entryJSON{Path: e.Path, Kind: e.Kind, Anchor: e.Anchor, DC: e.DC, Labels: e.Labels}
	for _, path := range []string{e.Path, e.Anchor} {
		if p, err := anchor.Parse(path); err == nil && p.Server != 0 {
			out.Server = p.Server.String()
			break
		}
	}
	return out
}
