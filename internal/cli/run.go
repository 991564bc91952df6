package cli

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/fault"
	"golang.org/x/term"
)

// exitRunFailed is run's exit code for a server that vanished, timed out
// or could not start the command, as ssh exits with 255 when it cannot
// reach a host; a larger exit code of a command wins.
const exitRunFailed = 255

// runFailure is the exit code that a copy's failure counts as: its class's
// (package fault) when its server refused it, else exitRunFailed.
func runFailure(err error) int {
	if c := fault.Of(err); c != fault.Remote && c != fault.Lost {
		return c.Exit()
	}
	return exitRunFailed
}

type runFlags struct {
	selector string
	fanout   int
	timeout  time.Duration
	gather   bool
	noStdin  bool
}

func runCmd() *command {
	return &command{
		name:  "run",
		exits: "The largest exit code of the copies when it is not 0; for a copy that its server refused, the exit code of the refusal's class (a bad request, permission denied...); 255 for a server that vanished, timed out or could not start the command.",
		args:  "-- CMD [ARG...]",
		short: "run a command on many servers at once, its output prefixed by server",
		long: `Runs CMD with its arguments on every server, or on those whose labels match
-l, at most -fanout at once. Each line of output is printed as it arrives,
prefixed by the server's ID: standard output to standard output, standard
error to standard error, never two lines mixed. With -b, servers whose
standard output is identical are gathered into one block at the end.

Standard input, when it is not a terminal, is read to its end and sent to
every copy (-n: send nothing). Each copy is a process element at
/Xid/circuit-run/ID, scrubbed when done.

Exits with the largest exit code of the copies. A server that vanishes,
times out (-timeout) or cannot start the command is named on standard
error and counts as exit code 255; one that refuses the copy (a bad
request, permission denied) counts as the refusal's exit code.

Selectors: role=db, role!=db, zone in (a,b), zone notin (a), role (set),
!role (not set), joined by commas, all of which must hold.

Examples:
  circuit run -- uname -n
  circuit run -l role=db -fanout 5 -timeout 30s -- systemctl restart postgresql
  circuit run -b -l 'zone in (a,b)' -- cat /etc/os-release
  echo hello | circuit run -- cat`,
		dial: true,
		json: `Nothing while the copies run; when all have ended, one JSON object:
Results, one per server in the order of their IDs, each with Server (its
ID), ExitCode (-1 when the process did not exit), Stdout and Stderr (the
whole output, as text) and Error (why the copy failed, when it did; also
named on standard error). -b has no effect with -json. The exit code is as
without -json.`,
		flags: func(fs *flag.FlagSet) any {
			f := &runFlags{}
			fs.StringVar(&f.selector, "l", "", "run only on servers whose labels match this `SELECTOR` (role=db,zone in (a,b); dc=NAME chooses a datacenter)")
			fs.IntVar(&f.fanout, "fanout", 64, "run on at most `N` servers at once (0: all)")
			fs.DurationVar(&f.timeout, "timeout", 0, "kill a copy still running after `DURATION` (0: never)")
			fs.BoolVar(&f.gather, "b", false, "gather servers with identical standard output into one block")
			fs.BoolVar(&f.noStdin, "n", false, "send nothing to the copies' standard input")
			return f
		},
		run: runRun,
	}
}

func runRun(env *Env, inv *invocation) error {
	f := inv.opts.(*runFlags)
	if len(inv.args) == 0 {
		return usagef("run needs a command after --, e.g. circuit run -- uname -n")
	}
	if f.fanout < 0 {
		return usagef("-fanout %d: want 0 (all) or more", f.fanout)
	}
	if f.timeout < 0 {
		return usagef("-timeout %v: want 0 (never) or more", f.timeout)
	}
	opt := client.RunOptions{Selector: f.selector, Fanout: f.fanout, Timeout: f.timeout}
	if !f.noStdin && env.Stdin != nil && !isTerminal(env.Stdin) {
		in, err := io.ReadAll(env.Stdin)
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		if len(in) > 0 { // empty input is the same as none: stdin at EOF
			opt.Stdin = in
		}
	}
	opt.OnLine = func(server string, s client.Stream, line []byte) {
		if env.jsonOut || (s == client.Stdout && f.gather) {
			return
		}
		w := env.Stdout
		if s == client.Stderr {
			w = env.Stderr
		}
		if !bytes.HasSuffix(line, []byte("\n")) {
			line = append(line, '\n')
		}
		w.Write(append([]byte(server+": "), line...))
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	cmd := client.Cmd{Path: inv.args[0], Args: inv.args[1:]}
	results, err := c.Run(env.Ctx, cmd, opt)
	if err != nil {
		return err
	}
	if len(results) == 0 {
		if f.selector != "" {
			return fmt.Errorf("no server matches %q", f.selector)
		}
		return fmt.Errorf("no server to run on")
	}
	if env.jsonOut {
		if err := printJSON(env, toRunJSON(results)); err != nil {
			return err
		}
	} else if f.gather {
		printGathered(env.Stdout, results)
	}
	code := 0
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(env.Stderr, "circuit run: %s: %v\n", r.Server, r.Err)
			code = max(code, runFailure(r.Err))
			continue
		}
		code = max(code, r.ExitCode)
	}
	if code != 0 {
		return exitStatus(code)
	}
	return nil
}

// runJSON is what run -json prints.
type runJSON struct {
	Results []runResultJSON
}

type runResultJSON struct {
	Server         string
	ExitCode       int
	Stdout, Stderr string
	Error          string `json:",omitempty"`
}

func toRunJSON(results []client.RunResult) runJSON {
	out := runJSON{Results: make([]runResultJSON, 0, len(results))}
	for _, r := range results {
		j := runResultJSON{Server: r.Server, ExitCode: r.ExitCode, Stdout: string(r.Stdout), Stderr: string(r.Stderr)}
		if r.Err != nil {
			j.Error = r.Err.Error()
		}
		out.Results = append(out.Results, j)
	}
	slices.SortFunc(out.Results, func(a, b runResultJSON) int { return strings.Compare(a.Server, b.Server) })
	return out
}

// printGathered prints, as clush -b does, one block per distinct standard
// output, headed by the servers that printed it.
func printGathered(w io.Writer, results []client.RunResult) {
	var outs []string
	by := map[string][]string{}
	for _, r := range results {
		if r.Err != nil && len(r.Stdout) == 0 {
			continue
		}
		o := string(r.Stdout)
		if _, ok := by[o]; !ok {
			outs = append(outs, o)
		}
		by[o] = append(by[o], r.Server)
	}
	// Largest groups first, then by first server.
	slices.SortStableFunc(outs, func(a, b string) int { return len(by[b]) - len(by[a]) })
	var b strings.Builder
	for _, o := range outs {
		servers := by[o]
		b.WriteString("---------------\n")
		fmt.Fprintf(&b, "%s (%d)\n", strings.Join(servers, ","), len(servers))
		b.WriteString("---------------\n")
		b.WriteString(o)
		if o != "" && !strings.HasSuffix(o, "\n") {
			b.WriteByte('\n')
		}
	}
	io.WriteString(w, b.String())
}

// isTerminal tells whether r is a terminal, whose input is typed, not
// piped.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
