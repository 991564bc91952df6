package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchorfs"
)

type graveyardFlags struct{ tree bool }

func graveyardCmd() *command {
	return &command{
		name:  "graveyard",
		args:  "[DIR[/...]]",
		short: "list the records of workers that ended: who they were, who spawned them, why they ended (seed 003's graveyard)",
		long: `Lists, newest first, the records that workers left when they ended, kept by
the servers that ran them: those listed in the anchor-file-system directory
DIR, or anywhere below it with /..., or every record for / (the default).
A record holds the worker's ID, function, binary (SHA-256), server and
directories; its parent (the worker that spawned it, or the client by its
credential and address); its start and end; its cause (returned, error:
MSG, panic: MSG, signal NAME, failed: MSG, exit N); and the last 16 KiB
of its stderr (-json shows it).

-tree shows generations: each worker under the worker that spawned it. A
worker that replaced another (circuit respawn) has the same parent, and says
which it replaced.

A server keeps its records in -var across restarts, at most 10000 and for
7 days by default (start -graveyard-max N, -graveyard-age D).

Examples:
  circuit graveyard /
  circuit graveyard -tree /firehose/...`,
		exits: "1 when some servers did not answer: the others' records are printed.",
		dial:  true,
		json: `One JSON object per line: ID, Func, Binary, Server, Anchor, Dirs, Parent,
Replaces (the worker it replaced, if any), Start, End, Cause, Stderr.`,
		flags: func(fs *flag.FlagSet) any {
			f := &graveyardFlags{}
			fs.BoolVar(&f.tree, "tree", false, "show each worker under the worker that spawned it")
			return f
		},
		run: runGraveyard,
	}
}

func runGraveyard(env *Env, inv *invocation) error {
	f := inv.opts.(*graveyardFlags)
	dir := "/"
	switch len(inv.args) {
	case 0:
	case 1:
		dir = inv.args[0]
	default:
		return usagef("graveyard takes at most one directory")
	}
	if q, err := anchorfs.Parse(dir); err != nil {
		return usagef("%v", err)
	} else if q.File != "" {
		return usagef("graveyard lists a directory, not a worker's file: %s", dir)
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	recs, err := c.Graveyard(env.Ctx, dir)
	var incomplete *client.IncompleteError
	if err != nil && !errors.As(err, &incomplete) {
		return fmt.Errorf("graveyard %s: %w", dir, err)
	}
	switch {
	case env.jsonOut:
		for _, r := range recs {
			if perr := printJSON(env, r); perr != nil {
				return perr
			}
		}
	case f.tree:
		printGraveTree(env, recs)
	default:
		w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ENDED\tID\tFUNC\tCAUSE\tRAN\tPARENT\tSERVER")
		for _, r := range recs {
			fmt.Fprintln(w, graveLine(r))
		}
		w.Flush()
	}
	if err != nil {
		return fmt.Errorf("graveyard %s: %w", dir, err)
	}
	return nil
}

func graveLine(r client.GraveRecord) string {
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%v\t%s\t%s", r.End.Local().Format(time.DateTime), r.ID, r.Func, oneLine(r.Cause),
		r.End.Sub(r.Start).Round(time.Millisecond), r.Parent, r.Server)
}

// oneLine is s up to its first line break.
func oneLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// printGraveTree prints the records as generations: a worker whose parent
// is no listed worker is a root, and each worker is indented under its
// parent, newest first at every level.
func printGraveTree(env *Env, recs []client.GraveRecord) {
	listed := map[string]bool{}
	children := map[string][]client.GraveRecord{}
	for _, r := range recs {
		listed[r.ID] = true
	}
	var roots []client.GraveRecord
	for _, r := range recs {
		if listed[r.Parent] {
			children[r.Parent] = append(children[r.Parent], r)
		} else {
			roots = append(roots, r)
		}
	}
	var walk func(r client.GraveRecord, depth int)
	walk = func(r client.GraveRecord, depth int) {
		parent := ""
		if depth == 0 {
			parent = ", spawned by " + r.Parent
		}
		if r.Replaces != "" {
			parent += ", replacing " + r.Replaces
		}
		fmt.Fprintf(env.Stdout, "%s%s %s: %s (ran %v on %s%s)\n", strings.Repeat("  ", depth), r.ID, r.Func, oneLine(r.Cause),
			r.End.Sub(r.Start).Round(time.Millisecond), r.Server, parent)
		for _, c := range children[r.ID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
}
