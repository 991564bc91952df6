package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchor"
)

type execFlags struct{ tty bool }

func execCmd() *command {
	return &command{
		name:  "exec",
		exits: "The remote command's own exit code when it is not 0.",
		args:  "/Xid -- CMD [ARG...]",
		short: "run a command on a server, attached to this terminal (-t: on a pseudo-terminal)",
		long: `Runs CMD on the server /Xid with this process's standard input, output and
error, and exits with its exit code. The process is an element at
/Xid/circuit-exec/ID, scrubbed when it is done.

With -t it runs on a pseudo-terminal: this terminal is put in raw mode (and
restored on exit, whatever happens), so that keys such as Ctrl-C reach the
remote program rather than this one; the window size is sent at the start
and again on every change; TERM is passed on.

Examples:
  circuit exec -t /X88550014d4c82e4d -- /bin/sh
  circuit exec /X88550014d4c82e4d -- df -h`,
		dial: true,
		flags: func(fs *flag.FlagSet) any {
			f := &execFlags{}
			fs.BoolVar(&f.tty, "t", false, "run on a pseudo-terminal, with this terminal in raw mode")
			return f
		},
		run: runExec,
	}
}

func runExec(env *Env, inv *invocation) error {
	f := inv.opts.(*execFlags)
	if len(inv.args) < 2 {
		return usagef("exec needs a server and a command, e.g. circuit exec -t /X88550014d4c82e4d -- /bin/sh")
	}
	p, err := anchor.Parse(inv.args[0])
	if err != nil || p.Server == 0 || len(p.Elems) != 0 {
		return usagef("exec %s: want a server's anchor, /X and 16 hex digits", inv.args[0])
	}
	var idb [8]byte
	rand.Read(idb[:])
	path := "/" + p.Server.String() + "/circuit-exec/" + hex.EncodeToString(idb[:])
	cmd := client.Cmd{Path: inv.args[1], Args: inv.args[2:]}

	var in *os.File
	if f.tty {
		if !isTerminal(env.Stdin) {
			return usagef("exec -t: standard input is not a terminal")
		}
		in = env.Stdin.(*os.File)
		cols, rows, err := term.GetSize(int(in.Fd()))
		if err != nil {
			return fmt.Errorf("exec -t: reading the window size: %w", err)
		}
		cmd.Tty, cmd.Rows, cmd.Cols = true, uint16(rows), uint16(cols)
		if t := env.Getenv("TERM"); t != "" {
			cmd.Env = []string{"TERM=" + t}
		}
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	ctx := env.Ctx
	h, err := c.MakeProcAt(ctx, path, cmd)
	if err != nil {
		return fmt.Errorf("exec %s: %w", inv.args[0], err)
	}
	// The element goes whatever happens: a scrub kills the process group
	// if it still runs, and removes the element.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		c.ScrubAt(cctx, path)
	}()

	if f.tty {
		old, err := term.MakeRaw(int(in.Fd()))
		if err != nil {
			return fmt.Errorf("exec -t: raw mode: %w", err)
		}
		defer term.Restore(int(in.Fd()), old)
		// SIGTERM or SIGHUP to this CLI: end the session, so that the
		// deferred calls restore the terminal and remove the element.
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGWINCH, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(sigs)
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case s := <-sigs:
					if s != syscall.SIGWINCH {
						cancel()
						return
					}
					if cols, rows, err := term.GetSize(int(in.Fd())); err == nil {
						h.Resize(ctx, uint16(rows), uint16(cols))
					}
				}
			}
		}()
	}

	var wg sync.WaitGroup
	names, writers := []string{"stdout", "stderr"}, []io.Writer{env.Stdout, env.Stderr}
	if f.tty {
		names = names[:1] // stderr is merged into the terminal
	}
	for i, name := range names {
		conn, err := h.OpenStream(ctx, name)
		if err != nil {
			return fmt.Errorf("exec: %s: %w", name, err)
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		wg.Go(func() {
			defer stop()
			defer conn.Close()
			io.Copy(writers[i], conn)
		})
	}
	stdin, err := h.OpenStream(ctx, "stdin")
	if err != nil {
		return fmt.Errorf("exec: stdin: %w", err)
	}
	// Standard input is copied until it ends (then EOF goes on) or the
	// process exits; the copy is not waited for, as a terminal read never
	// ends by itself.
	go func() {
		io.Copy(stdin, env.Stdin)
		if cw, ok := stdin.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	defer stdin.Close()

	st, err := h.Wait(ctx)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) && env.Ctx.Err() == nil {
			return fmt.Errorf("exec: the session was ended by a signal")
		}
		return fmt.Errorf("exec: %w", err)
	}
	wg.Wait()
	if st.ExitCode != 0 {
		return exitStatus(st.ExitCode)
	}
	return nil
}
