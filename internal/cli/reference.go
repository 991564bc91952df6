package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
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
	p("Every command that talks to a cluster takes the dial-in flags below. With no `-d` or `-discover`, the dial-in server is read from the file named by `$CIRCUIT`, or found by multicast on `$CIRCUIT_DISCOVER`. The key file may be given by `$CIRCUIT_HMAC`.\n\n")
	dialFS := flag.NewFlagSet("dial", flag.ContinueOnError)
	addDialFlags(dialFS)
	writeFlags(w, dialFS, nil)
	// own tells a dialling command's own flags from the dial-in flags,
	// which have their section above.
	own := func(f *flag.Flag) bool { return dialFS.Lookup(f.Name) == nil }
	p("## Exit codes\n\n")
	p("| code | meaning |\n|---|---|\n")
	p("| %d | success |\n", ExitOK)
	p("| %d | the operation failed: refused or failed at the server, or a remote command failed |\n", ExitFailed)
	p("| %d | usage error: an unknown command or flag, or an argument that the tool or the server found malformed |\n", ExitUsage)
	p("| %d | not found: no element, anchor, server or worker at the path |\n", ExitNotFound)
	p("| %d | cannot connect or authenticate: no dial-in server, wrong key, a server lost mid-operation |\n\n", ExitConnect)
	p("Some commands add codes of their own (below). Errors go to standard error, never to standard output.\n\n")
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
		p("Exit codes: the [common ones](#exit-codes).")
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
