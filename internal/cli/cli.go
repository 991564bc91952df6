// Package cli is the circuit command-line tool: the commands, listed in
// commands.go and kept in one file per group (chan.go, proc.go, ...), each a
// client of the public client package (except start, which runs a server).
// Flags are Go-style single-dash long flags (-discover, -hmac) and may come
// before or after the arguments; the dial-in flags are defined once, in
// dial.go, and shared by every command that talks to a cluster.
//
// Exit codes: 0 success; 1 the operation failed remotely; 2 usage error;
// 3 not found; 4 cannot connect or authenticate.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/fault"
)

// Exit codes: package fault's table gives each class of failure its own.
const (
	ExitOK       = fault.ExitOK
	ExitFailed   = fault.ExitFailed
	ExitUsage    = fault.ExitUsage
	ExitNotFound = fault.ExitNotFound
	ExitConnect  = fault.ExitConnect
)

// Env is what a command runs with.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	Ctx    context.Context

	jsonOut bool // -json was given: print data as compact JSON
}

// command is one circuit command.
type command struct {
	name  string
	args  string // synopsis of the positional arguments
	short string // one line for `circuit help`
	long  string // more, for `circuit help CMD`
	// example is one example command line, for commands whose long text
	// has none.
	example string
	// exits documents exit codes of its own, beyond the common ones.
	exits string
	dial  bool // takes the dial-in flags
	// json, when set, gives the command a -json flag and documents what it
	// prints with it (docs/CLI.md): its fields, which are stable.
	json  string
	flags func(fs *flag.FlagSet) any
	run   func(env *Env, cmd *invocation) error
}

// invocation is a command with its parsed flags and arguments.
type invocation struct {
	cmd   *command
	fs    *flag.FlagSet
	dial  *dialFlags
	opts  any // what cmd.flags returned
	args  []string
	dials *client.Client
}

// usageError is an error in how the command was called.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// Main runs the command line args (without the program name) and returns
// the exit code.
func Main(env *Env, args []string) int {
	if env.Ctx == nil {
		env.Ctx = context.Background()
	}
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if len(args) == 0 {
		printHelp(env.Stderr)
		return ExitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			c := lookup(args[1])
			if c == nil {
				return unknown(env, args[1])
			}
			printCommandHelp(env.Stdout, c)
			return ExitOK
		}
		printHelp(env.Stdout)
		return ExitOK
	}
	c := lookup(name)
	if c == nil {
		return unknown(env, name)
	}
	inv := &invocation{cmd: c, fs: flag.NewFlagSet("circuit "+name, flag.ContinueOnError)}
	inv.fs.SetOutput(io.Discard)
	var jsonOut *bool
	inv.dial, inv.opts, jsonOut = defineFlags(c, inv.fs)
	pos, err := parseInterspersed(inv.fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		printCommandHelp(env.Stdout, c)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "circuit %s: %v\n", name, err)
		fmt.Fprintf(env.Stderr, "usage: circuit %s %s (circuit help %s shows the flags)\n", name, c.args, name)
		return ExitUsage
	}
	inv.args = pos
	if jsonOut != nil && *jsonOut {
		e := *env
		e.jsonOut = true
		env = &e
	}
	err = c.run(env, inv)
	if inv.dials != nil {
		inv.dials.Close()
	}
	if err == nil {
		return ExitOK
	}
	if s, ok := err.(interface{ Silent() bool }); ok && s.Silent() {
		return exitCode(err) // a process's own exit code, already reported
	}
	if msg := err.Error(); strings.HasPrefix(msg, name+" ") {
		fmt.Fprintf(env.Stderr, "circuit %s\n", msg) // the error names the command already
	} else {
		fmt.Fprintf(env.Stderr, "circuit %s: %s\n", name, msg)
	}
	return exitCode(err)
}

// exitCode is the exit code for err: a process's own, the command line's
// own for usage and keys, else that of err's class in package fault.
func exitCode(err error) int {
	var ue *usageError
	var auth *client.AuthError
	var ex interface{ ExitCode() int }
	var lost *client.HostLostError
	switch {
	case errors.As(err, &lost) && lost.NotMember:
		return ExitNotFound
	case errors.As(err, &ex):
		return ex.ExitCode()
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &auth):
		return ExitConnect
	}
	return fault.Of(err).Exit()
}

// parseInterspersed parses flags wherever they appear among the arguments;
// "--" ends flag parsing.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "circuit: one binary that is both the server and the client of a circuit cluster.")
	fmt.Fprintln(w, "\nusage: circuit COMMAND [flags] [arguments]\n\ncommands:")
	cmds := commands()
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.name))
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.short)
	}
	fmt.Fprintln(w, "\n'circuit help COMMAND' or 'circuit COMMAND -h' shows a command's flags.")
}

func printCommandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: circuit %s [flags] %s\n\n%s\n", c.name, c.args, c.short)
	if c.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.long))
	}
	if c.example != "" {
		fmt.Fprintf(w, "\nExample:\n  %s\n", c.example)
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	defineFlags(c, fs)
	if hasFlags(fs, nil) {
		fmt.Fprintln(w, "\nflags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	if c.dial {
		fmt.Fprintln(w, "\nWith no -d or -discover, the dial-in server is read from the file named by\n$CIRCUIT, or found by multicast on $CIRCUIT_DISCOVER. The key file may be\ngiven by $CIRCUIT_HMAC.")
	}
}

// defineFlags defines a command's flags on fs: the dial-in flags if it
// dials, its own, and -json if it prints JSON. It returns where they land.
func defineFlags(c *command, fs *flag.FlagSet) (dial *dialFlags, opts any, jsonOut *bool) {
	if c.dial {
		dial = addDialFlags(fs)
	}
	if c.flags != nil {
		opts = c.flags(fs)
	}
	if c.json != "" {
		jsonOut = fs.Bool("json", false, "print JSON (fields in docs/CLI.md)")
	}
	return dial, opts, jsonOut
}

func unknown(env *Env, name string) int {
	best, bestD := "", 1<<30
	for _, c := range commands() {
		n := c.name
		if d := distance(name, n); d < bestD || (d == bestD && n < best) {
			best, bestD = n, d
		}
	}
	if bestD <= max(2, len(name)/2) {
		fmt.Fprintf(env.Stderr, "circuit: unknown command %q; did you mean %q?\n", name, best)
	} else {
		fmt.Fprintf(env.Stderr, "circuit: unknown command %q; 'circuit help' lists the commands\n", name)
	}
	return ExitUsage
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// pathCommand makes the run function of a command that takes one path: it
// checks the argument, connects, and runs f, naming the command and the
// path in f's error.
func pathCommand(f func(env *Env, c *client.Client, path string) error) func(*Env, *invocation) error {
	return func(env *Env, inv *invocation) error {
		path, err := onePath(inv, inv.cmd.name)
		if err != nil {
			return err
		}
		c, err := connect(env, inv)
		if err != nil {
			return err
		}
		if err := f(env, c, path); err != nil {
			if _, ok := err.(exitStatus); ok {
				return err
			}
			return fmt.Errorf("%s %s: %w", inv.cmd.name, path, err)
		}
		return nil
	}
}

// maxDescription bounds the JSON that mkproc and mkdkr read on stdin.
const maxDescription = 1 << 20

// readDescription reads a JSON description from stdin, refusing one longer
// than maxDescription bytes, and decodes it into v (parseJSON's rules); a
// description that does not decode is a usage error.
func readDescription(env *Env, what string, v any) error {
	src, err := io.ReadAll(io.LimitReader(env.Stdin, maxDescription+1))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(src) > maxDescription {
		return usagef("%s is longer than %d bytes", what, maxDescription)
	}
	if err := parseJSON(what, src, v); err != nil {
		return usagef("%v", err)
	}
	return nil
}
