package cli

import (
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/circuit-project/circuit/client"
)

type logFlags struct {
	follow bool
	n      int
}

func logCmd() *command {
	return &command{
		name:  "log",
		args:  "/Xid",
		short: "print a server's recent operation records: who ran what, from where, and how it ended",
		long: `Prints the records of a server's latest operations (it keeps the last 256
in memory), oldest first, and with -f every new one as it is made, until
interrupted. Each operation has a record when it begins and one when it
ends, under its number; one that started a process has a third when the
process exits. A line reads:

  SEQ TIME EVENT OP PATH who=WHO from=ADDR [via=RELAY] FACTS [err=...]

where FACTS are the operation's own (a command's cmd.path, cmd.args and
cmd.dir, run's selector, a signal, a copy's file and bytes; an exit's
exit_code). from is the original client's address, also through a relay.
The same records, every one, go to the file of circuit start -audit FILE.
It needs role admin.

Examples:
  circuit log /X88550014d4c82e4d
  circuit log -f -json /X88550014d4c82e4d`,
		dial: true,
		json: `One JSON object per line, as the audit file holds them: Seq, Time, Event
(begin, end or exit), Op, Path, Who, From, Via, What (an object of the
operation's facts, and in an exit record exit_code, signal and exit), Err,
Took.`,
		flags: func(fs *flag.FlagSet) any {
			f := &logFlags{}
			fs.BoolVar(&f.follow, "f", false, "follow: print every new record as it is made")
			fs.IntVar(&f.n, "n", 0, "only the last `N` operations' records (0: all that are kept)")
			return f
		},
		run: runLog,
	}
}

func runLog(env *Env, inv *invocation) error {
	f := inv.opts.(*logFlags)
	id, err := serverArg(inv, "log")
	if err != nil {
		return err
	}
	if f.n < 0 {
		return usagef("-n %d: want 0 or more", f.n)
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	err = c.Log(env.Ctx, id, client.LogOptions{N: f.n, Follow: f.follow}, func(r client.LogRecord) error {
		if env.jsonOut {
			return printJSON(env, r)
		}
		_, err := fmt.Fprintln(env.Stdout, formatRecord(r))
		return err
	})
	if err != nil {
		return fmt.Errorf("log /%s: %w", id, err)
	}
	return nil
}

// formatRecord is a record's line for people.
func formatRecord(r client.LogRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s %-5s %s", r.Seq, r.Time.Local().Format("2006-01-02T15:04:05.000"), r.Event, r.Op)
	if r.Path != "" {
		b.WriteString(" " + r.Path)
	}
	for _, kv := range [][2]string{{"who", r.Who}, {"from", r.From}, {"via", r.Via}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%q", kv[0], kv[1])
		}
	}
	keys := make([]string, 0, len(r.What))
	for k := range r.What {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, r.What[k])
	}
	if r.Took != "" {
		b.WriteString(" took=" + r.Took)
	}
	if r.Err != "" {
		fmt.Fprintf(&b, " err=%q", r.Err)
	}
	return b.String()
}
