package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/revocation"
	"github.com/circuit-project/circuit/internal/security"
)

type revokeFlags struct{ list bool }

// revokeSeenWithin is how long revoke waits for every server to list what
// it revoked before it reports the ones that do not yet.
const revokeSeenWithin = 3 * time.Second

func revokeCmd() *command {
	return &command{
		name:  "revoke",
		args:  "CREDFILE|ID...",
		short: "revoke credentials on every server, or list the revoked ones (-list)",
		long: `Revokes each credential, named by its file or by its ID (the 32 hex digits
that circuit cred -json prints), and every credential made under it (the
credentials of the processes and workers it started). It needs role admin.

The dial-in server keeps the entry in its -var directory and tells every
member at once; servers that are down or join later get it when they next
exchange state with any member (on joining, and every 30 s). Each server
refuses the credential from then on, at its next connection or operation,
and closes its open connections:
  authentication failed: credential 5f…e1 was revoked at 2026-12-07T16:02:11Z by key

revoke then asks every server for its list and reports how many have the
entry; one that has not within 3 s is named, and the exit status is 1.
An entry is kept until the credential would have expired (given a file);
given only an ID, until any credential could (a year).

-list prints the dial-in server's list.`,
		example: "circuit revoke alice.cred",
		exits:   "1 when some server did not list the revocation within 3 s: it is in force on the others.",
		dial:    true,
		json: `Revoking: a JSON array, one object per credential: ID, Name, Until, At, By
(the entry in force), Added (false if it was revoked already), Servers (how
many were asked) and Missing (the IDs of servers that did not list it).
With -list: a JSON array of objects ID, Name, Until, At, By.`,
		flags: func(fs *flag.FlagSet) any {
			f := &revokeFlags{}
			fs.BoolVar(&f.list, "list", false, "list the revoked credentials")
			return f
		},
		run: runRevoke,
	}
}

// revokeTarget is a credential named on revoke's command line.
type revokeTarget struct {
	id, name string
	until    time.Time
}

// revokeTargets reads revoke's arguments: credential files or IDs.
func revokeTargets(args []string) ([]revokeTarget, error) {
	var out []revokeTarget
	for _, a := range args {
		if revocation.CheckID(a) == nil {
			out = append(out, revokeTarget{id: a})
			continue
		}
		b, err := os.ReadFile(a)
		if err != nil {
			return nil, usagef("%s is neither a credential's ID (32 hex digits) nor a file: %v", a, err)
		}
		c, err := security.ReadClaims(b)
		if err != nil {
			return nil, usagef("%s: %v", a, err)
		}
		out = append(out, revokeTarget{id: c.ID, name: c.Name, until: c.NotAfter})
	}
	return out, nil
}

func runRevoke(env *Env, inv *invocation) error {
	f := inv.opts.(*revokeFlags)
	if f.list {
		if len(inv.args) != 0 {
			return usagef("revoke -list takes no arguments")
		}
		return listRevoked(env, inv)
	}
	if len(inv.args) == 0 {
		return usagef("revoke needs a credential file or ID: circuit revoke alice.cred")
	}
	targets, err := revokeTargets(inv.args)
	if err != nil {
		return err
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	type result struct {
		client.Revocation
		Added   bool
		Servers int
		Missing []string
	}
	var results []result
	for _, t := range targets {
		r, added, err := c.Revoke(env.Ctx, t.id, t.name, t.until)
		if err != nil {
			return fmt.Errorf("revoke %s: %w", t.id, err)
		}
		results = append(results, result{Revocation: r, Added: added})
	}
	// Every server should list them within the promised 2 s.
	members, err := c.Members(env.Ctx)
	if err != nil {
		return fmt.Errorf("revoke: the entries are in force, but listing the servers to check them failed: %w", err)
	}
	deadline := time.Now().Add(revokeSeenWithin)
	for i := range results {
		results[i].Servers = len(members)
	}
	for _, m := range members {
		for {
			listed, err := c.Revocations(env.Ctx, m.ID)
			var missing []int // the results this server does not list yet
			for i := range results {
				if err != nil || !slices.ContainsFunc(listed, func(r client.Revocation) bool { return r.ID == results[i].ID }) {
					missing = append(missing, i)
				}
			}
			if len(missing) == 0 || time.Now().After(deadline) {
				for _, i := range missing {
					results[i].Missing = append(results[i].Missing, m.ID)
				}
				break
			}
			select {
			case <-env.Ctx.Done():
				return env.Ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	incomplete := false
	for _, r := range results {
		incomplete = incomplete || len(r.Missing) > 0
	}
	if env.jsonOut {
		if err := printJSON(env, results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			state := "revoked"
			if !r.Added {
				state = "already revoked"
			}
			name := ""
			if r.Name != "" {
				name = " (" + r.Name + ")"
			}
			fmt.Fprintf(env.Stdout, "%s %s%s at %s by %s, kept until %s: listed by %d of %d servers\n", state, r.ID, name,
				r.At.UTC().Format(time.RFC3339), r.By, r.Until.UTC().Format(time.RFC3339), r.Servers-len(r.Missing), r.Servers)
			if len(r.Missing) > 0 {
				fmt.Fprintf(env.Stdout, "  not yet listed by /%s\n", strings.Join(r.Missing, ", /"))
			}
		}
	}
	if incomplete {
		return errors.New("revoke: some servers did not list the revocation within 3 s; they get it at their next exchange of state")
	}
	return nil
}

func listRevoked(env *Env, inv *invocation) error {
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	rs, err := c.Revocations(env.Ctx, "")
	if err != nil {
		return fmt.Errorf("revoke -list: %w", err)
	}
	if env.jsonOut {
		if rs == nil {
			rs = []client.Revocation{}
		}
		return printJSON(env, rs)
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tREVOKED\tBY\tUNTIL")
	for _, r := range rs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, r.At.UTC().Format(time.RFC3339), r.By, r.Until.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}
