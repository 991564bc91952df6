package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/kind"
)

// exitStatus makes the CLI exit with a process's own code.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit code %d", int(e)) }
func (e exitStatus) ExitCode() int { return int(e) }
func (e exitStatus) Silent() bool  { return true }

type mkprocFlags struct{ scrub, tty bool }

// onePath checks that a command got exactly one path.
func onePath(inv *invocation, verb string) (string, error) {
	if len(inv.args) != 1 {
		return "", usagef("%s takes one path, e.g. circuit %s /X88550014d4c82e4d/job", verb, verb)
	}
	return inv.args[0], nil
}

func mkprocCmd() *command {
	return &command{
		name:  "mkproc",
		args:  "PATH",
		short: "start a process: reads the command as JSON on stdin",
		long: `The command is a JSON object with the fields Path (required), Args, Env, Dir,
Scrub, Dirs, Result, NoStdin, and Tty with Rows and Cols; trailing commas
are fine. With Scrub (or -scrub) the element is removed once the process has
exited and its output has been read (or 30 s after the exit if nobody reads
it). An unset Env means an empty environment. Dirs lists the process in
those directories of the anchor file system (its anchor must then be named
by a worker ID, R and 16 hex digits). With Result, what the process writes
on file descriptor 3 (up to 1 MiB) is its peek's Result once it exits.
NoStdin starts it with its standard input at end of file.

Example:
  circuit mkproc /X88550014d4c82e4d/pippi << EOF
  {
      "Path": "/bin/ls",
      "Args": ["/"],
  }
  EOF`,
		dial: true,
		flags: func(fs *flag.FlagSet) any {
			f := &mkprocFlags{}
			fs.BoolVar(&f.scrub, "scrub", false, "remove the element when the process exits")
			fs.BoolVar(&f.tty, "t", false, "run the process on a pseudo-terminal (24x80 unless the JSON gives Rows and Cols): stdout carries the terminal, stderr is merged into it")
			return f
		},
		run: runMkproc,
	}
}

func runMkproc(env *Env, inv *invocation) error {
	path, err := onePath(inv, "mkproc")
	if err != nil {
		return err
	}
	var cmd client.Cmd
	if err := readDescription(env, "mkproc "+path+": the command on stdin", &cmd); err != nil {
		return err
	}
	if cmd.Path == "" {
		return usagef("mkproc %s: the command has no \"Path\"", path)
	}
	if inv.opts.(*mkprocFlags).scrub {
		cmd.Scrub = true
	}
	if inv.opts.(*mkprocFlags).tty {
		cmd.Tty = true
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	if _, err := c.MakeProcAt(env.Ctx, path, cmd); err != nil {
		return fmt.Errorf("mkproc %s: %w", path, err)
	}
	return nil
}

func waitCmd() *command {
	return &command{
		name:    "wait",
		exits:   "The process's or container's own exit code when it is not 0 (128+N when signal N killed it).",
		example: "circuit wait /X88550014d4c82e4d/pippi",
		args:    "PATH",
		short:   "wait for a process to exit, print its final state, and exit with its exit code",
		dial:    true,
		json: `The same document as without -json, on one line: a process's final state as
peek prints it, or a container's: ID, Name, Image, Phase, ExitCode, Exit
(null, or why it failed), Started, Exited.`,
		run: pathCommand(runWait),
	}
}

func runWait(env *Env, c *client.Client, path string) error {
	var printed any
	code := 0
	if k, err := c.KindAt(env.Ctx, path); err == nil && kind.Kind(k) == kind.Docker {
		st, err := c.ContainerAt(path).Wait(env.Ctx)
		if err != nil {
			return err
		}
		printed, code = st, st.ExitCode
	} else {
		st, err := c.ProcAt(path).Wait(env.Ctx)
		if err != nil {
			return err
		}
		printed, code = st, st.ExitCode
	}
	if err := printJSON(env, printed); err != nil {
		return err
	}
	if code != 0 {
		return exitStatus(code)
	}
	return nil
}

func waitallCmd() *command {
	return &command{
		name:    "waitall",
		exits:   "The largest exit code of the processes when it is not 0.",
		example: "circuit waitall /X88550014d4c82e4d/pippi /X56e7a2a0d47a7b5d/emil",
		args:    "PATH...",
		short:   "wait for every given process to exit; exit with the largest exit code",
		long:    "Prints one JSON object mapping each path to its process's final state.",
		dial:    true,
		json:    "The same document as without -json, on one line: each path to its process's final state, as peek prints it.",
		run:     runWaitall,
	}
}

func runWaitall(env *Env, inv *invocation) error {
	if len(inv.args) == 0 {
		return usagef("waitall takes one or more process paths")
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[string]client.ProcStat{}
	var errs []error
	worst := 0
	for _, path := range inv.args {
		wg.Go(func() {
			st, err := c.ProcAt(path).Wait(env.Ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("wait %s: %w", path, err))
				return
			}
			out[path] = st
			worst = max(worst, st.ExitCode)
		})
	}
	wg.Wait()
	if err := printJSON(env, out); err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if worst != 0 {
		return exitStatus(worst)
	}
	return nil
}

// streamCmd is stdout or stderr: name is the stream it copies.
func streamCmd(name string, run func(env *Env, c *client.Client, path string) error) *command {
	return &command{
		name:    name,
		example: "circuit " + name + " /X88550014d4c82e4d/pippi",
		args:    "PATH",
		short:   "copy the " + name + " of a process to this " + name + ", until the process closes it",
		dial:    true,
		run:     pathCommand(run),
	}
}

func stdoutCmd() *command { return streamCmd("stdout", runStdout) }
func stderrCmd() *command { return streamCmd("stderr", runStderr) }

func runStdout(env *Env, c *client.Client, path string) error {
	return copyStream(env, c, path, "stdout", env.Stdout)
}

func runStderr(env *Env, c *client.Client, path string) error {
	return copyStream(env, c, path, "stderr", env.Stderr)
}

// copyStream copies the stream name of the process at path to out, until
// the process closes it.
func copyStream(env *Env, c *client.Client, path, name string, out io.Writer) error {
	conn, err := c.OpenStreamAt(env.Ctx, path, name)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := io.Copy(out, conn); err != nil {
		return err
	}
	return nil
}

func stdinCmd() *command {
	return &command{
		name:  "stdin",
		args:  "PATH",
		short: "copy this stdin to a process's stdin; EOF closes it",
		long:  "Example, closing a process's stdin at once:\n  cat /dev/null | circuit stdin /X88550014d4c82e4d/pippi",
		dial:  true,
		run:   pathCommand(runStdin),
	}
}

func runStdin(env *Env, c *client.Client, path string) error {
	conn, err := c.OpenStreamAt(env.Ctx, path, "stdin")
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := io.Copy(conn, env.Stdin); err != nil {
		return err
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	io.Copy(io.Discard, conn) // the server closes once the process has it all
	return nil
}

func signalCmd() *command {
	return &command{
		name:    "signal",
		example: "circuit signal TERM /X88550014d4c82e4d/pippi",
		args:    "SIGNAL PATH",
		short:   "send a signal (KILL, TERM, INT, HUP, USR1, ...) to a process and its group, or to a container",
		dial:    true,
		run:     runSignal,
	}
}

func runSignal(env *Env, inv *invocation) error {
	if len(inv.args) != 2 {
		return usagef("signal takes a signal name and a path, e.g. circuit signal TERM /X88550014d4c82e4d/job")
	}
	sig, path := inv.args[0], inv.args[1]
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	signal := c.ProcAt(path).Signal
	if k, err := c.KindAt(env.Ctx, path); err == nil && kind.Kind(k) == kind.Docker {
		signal = c.ContainerAt(path).Signal
	}
	if err := signal(env.Ctx, sig); err != nil {
		return fmt.Errorf("signal %s %s: %w", sig, path, err)
	}
	return nil
}

func scrubCmd() *command {
	return &command{
		name:    "scrub",
		example: "circuit scrub /X88550014d4c82e4d/pippi",
		args:    "PATH",
		short:   "abort and remove the element at PATH (a process is killed)",
		dial:    true,
		run:     pathCommand(runScrub),
	}
}

func runScrub(env *Env, c *client.Client, path string) error {
	if err := c.ScrubAt(env.Ctx, path); err != nil {
		return err
	}
	return nil
}
