package cli

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/op"
)

// Reference writes the command-line reference, docs/CLI.md, from the
// commands themselves (commands.go), so that it cannot drift from them:
// TestReferenceIsCurrent fails when the file differs.
func Reference(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# circuit command-line reference\n\n")
	p("This file is generated from the commands' own help by `CIRCUIT_UPDATE_DOCS=1 go test ./internal/cli -run TestReferenceIsCurrent`; edit the commands, not this file.\n\n")
	p("`circuit COMMAND [flags] [arguments]`. Flags are single-dash long flags (`-hmac FILE`) and may come before or after the arguments; `--` ends them. `circuit help COMMAND` prints what this file says of one command.\n\n")
	p("## Dial-in\n\n")
	p("Every command that talks to a cluster takes the dial-in flags below. With no `-d` or `-discover`, the dial-in server is read from the file named by `$CIRCUIT`, or found by multicast on `$CIRCUIT_DISCOVER`. The key file may be given by `$CIRCUIT_HMAC`; without a key, a credential file by `$CIRCUIT_CRED`, which a server sets for the processes it gives one (`\"Cred\": true` in mkproc's JSON, and every Spawn worker).\n\n")
	dialFS := flag.NewFlagSet("dial", flag.ContinueOnError)
	addDialFlags(dialFS)
	writeFlags(w, dialFS, nil)
	// own tells a dialling command's own flags from the dial-in flags,
	// which have their section above.
	own := func(f *flag.Flag) bool { return dialFS.Lookup(f.Name) == nil }
	writeErrors(p)
	writeOperations(p)
	p("## JSON output\n\n")
	p("Every command that prints data takes `-json`. `ls -json` prints one JSON object per line; the others print one JSON document on one line. The fields are listed beside each command; their names are stable, and new fields may be added. Commands that copy bytes (`recv`, `stdout`, `stderr`, `cp` to standard output, `exec`) print them as they are and take no `-json`.\n\n")
	p("## Commands\n\n")
	var cmds []*command
	for _, c := range commands() {
		if !c.hidden() {
			cmds = append(cmds, c)
		}
	}
	for _, c := range cmds {
		p("- [`%s`](#%s): %s\n", c.name, anchorOf(c.name), c.short)
	}
	p("\n")
	for _, c := range cmds {
		n := c.name
		p("### %s\n\n", n)
		p("```\ncircuit %s\n```\n\n", strings.TrimSpace(n+" [flags] "+c.args))
		p("%s.\n\n", strings.TrimSuffix(capital(c.short), "."))
		if c.long != "" {
			p("```\n%s\n```\n\n", strings.TrimSpace(c.long))
		}
		if c.example != "" {
			p("Example:\n\n```\n%s\n```\n\n", c.example)
		}
		fs := flag.NewFlagSet(n, flag.ContinueOnError)
		defineFlags(c, fs) // the flags the command parses, as help shows them
		var keep func(*flag.Flag) bool
		if c.dial {
			keep = own
			p("Takes the [dial-in flags](#dial-in).")
			if hasFlags(fs, keep) {
				p(" Its own:")
			}
			p("\n\n")
		}
		writeFlags(w, fs, keep)
		if c.json != "" {
			p("With `-json`:\n\n```\n%s\n```\n\n", strings.TrimSpace(c.json))
		}
		p("Exit codes: the [common ones](#exit-codes-and-errors).")
		if c.exits != "" {
			p(" %s", c.exits)
		}
		p("\n\n")
	}
}

// hidden tells whether a command is left out of help and the reference:
// commands the tool calls itself, named with a leading "__".
func (c *command) hidden() bool { return strings.HasPrefix(c.name, "__") }

// hasFlags tells whether fs has a flag that keep accepts (any flag, with
// keep nil).
func hasFlags(fs *flag.FlagSet, keep func(*flag.Flag) bool) bool {
	has := false
	fs.VisitAll(func(f *flag.Flag) { has = has || keep == nil || keep(f) })
	return has
}

// writeFlags writes a table of the flags of fs that keep accepts (all, with
// keep nil), if there are any.
func writeFlags(w io.Writer, fs *flag.FlagSet, keep func(*flag.Flag) bool) {
	if !hasFlags(fs, keep) {
		return
	}
	fmt.Fprint(w, "| flag | default | meaning |\n|---|---|---|\n")
	fs.VisitAll(func(f *flag.Flag) {
		if keep != nil && !keep(f) {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		flagName := "-" + f.Name
		if name != "" {
			flagName += " " + name
		}
		def := f.DefValue
		if def == "" || def == "false" || def == "[]" {
			def = ""
		} else {
			def = "`" + def + "`"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", flagName, def, strings.ReplaceAll(usage, "|", `\|`))
	})
	fmt.Fprintln(w)
}

// anchorOf is the link anchor GitHub gives a heading.
func anchorOf(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		if r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// writeErrors writes the table of failures (package fault): each class's
// exit code, the client library's error, and its codes on the wire.
func writeErrors(p func(string, ...any)) {
	p("## Exit codes and errors\n\n")
	p("Every failure is of one class. The table gives each class's exit code, the error that the Go client's errors match with `errors.Is` (in package `client`), and the codes it travels as: in an RPC's gRPC status, and in the refusal of a stream (`stdin`, `stdout`, `stderr`, `run`, `cp`).\n\n")
	p("| exit code | class | meaning | Go client | gRPC code | stream refusal |\n|---|---|---|---|---|---|\n")
	p("| %d | | success | | | |\n", ExitOK)
	classes := fault.Classes()
	sort.SliceStable(classes, func(i, j int) bool { return classes[i].Exit() < classes[j].Exit() })
	for _, c := range classes {
		refusal := "—"
		if w := c.Wire(); w != 0 {
			refusal = strconv.Itoa(int(w))
		}
		p("| %d | %s | %s | %s | %s | %s |\n", c.Exit(), c, c.Doc(), c.ClientError(), c.Code(), refusal)
	}
	p("\nOnly a lost transport is ever reported as a lost host or a lost dial-in server. Some commands add codes of their own (below): a process's own exit code passes through `wait`, `exec` and `run`. Errors go to standard error, never to standard output.\n\n")
}

// writeOperations writes the table of operations (package op): what each
// role may do, as the server that runs an operation enforces it.
func writeOperations(p func(string, ...any)) {
	p("## Roles and operations\n\n")
	p("A credential (`circuit cred`) has a role; the server that runs an operation checks it against this table, generated from the one table servers enforce (`internal/op`). Each role may do what the roles above it may. The cluster key may do everything. Operations marked *command* start a command, and a server started with `-no-exec` refuses them to everyone, the key included. A refusal exits with 5: `permission denied: NAME (role R) may not OP on PATH: REASON`.\n\n")
	p("| operation | least role | what |\n|---|---|---|\n")
	for _, o := range op.All() {
		what := o.What
		if o.Exec {
			what += "; *command*"
		}
		p("| `%s` | %s | %s |\n", o.Name, o.Role, what)
	}
	p("\n")
}
