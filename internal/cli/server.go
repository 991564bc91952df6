package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/circuit-project/circuit/client"

	"github.com/circuit-project/circuit/internal/anchor"
)

// serverArg parses a path that must name a server's anchor, /Xid.
func serverArg(inv *invocation, verb string) (string, error) {
	if len(inv.args) != 1 {
		return "", usagef("%s takes one server path, e.g. circuit %s /X88550014d4c82e4d", verb, verb)
	}
	p, err := anchor.Parse(inv.args[0])
	if err != nil {
		return "", usagef("%v", err)
	}
	if p.Server == 0 || len(p.Elems) != 0 || p.Recursive {
		return "", usagef("%s %s: want a server's anchor, /X followed by 16 hex digits", verb, inv.args[0])
	}
	return p.Server.String(), nil
}

func stkCmd() *command {
	return &command{
		name:    "stk",
		example: "circuit stk /X88550014d4c82e4d",
		args:    "/Xid|WORKER",
		short:   "print the goroutine stacks of a server, or of a worker (its anchor or its anchor-file-system file)",
		dial:    true,
		json:    "One JSON object: Server (its ID), or Worker (the path given), and Stack (the text of every goroutine's stack).",
		run:     runStk,
	}
}

func runStk(env *Env, inv *invocation) error {
	if len(inv.args) == 1 {
		if p, err := anchor.Parse(inv.args[0]); err != nil || len(p.Elems) > 0 || p.Server == 0 {
			return workerStk(env, inv)
		}
	}
	id, err := serverArg(inv, "stk")
	if err != nil {
		return err
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	b, err := c.Stack(env.Ctx, id)
	if err != nil {
		return fmt.Errorf("stk /%s: %w", id, err)
	}
	if env.jsonOut {
		return printJSON(env, struct{ Server, Stack string }{id, string(b)})
	}
	_, err = env.Stdout.Write(b)
	return err
}

func suicideCmd() *command {
	return &command{
		name:    "suicide",
		example: "circuit suicide /X88550014d4c82e4d",
		args:    "/Xid",
		short:   "stop a server: it leaves the cluster and exits",
		dial:    true,
		run:     runSuicide,
	}
}

func runSuicide(env *Env, inv *invocation) error {
	id, err := serverArg(inv, "suicide")
	if err != nil {
		return err
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	if err := c.StopServer(env.Ctx, id); err != nil {
		return fmt.Errorf("suicide /%s: %w", id, err)
	}
	return nil
}

func joinCmd() *command {
	return &command{
		name:  "join",
		args:  "URL",
		short: "make the dial-in server join the cluster of the server at URL, merging the two",
		long: `Example, merging the clusters of two servers:
  circuit join -d circuit://10.0.0.1:11022/78517/X56e7a2a0d47a7b5d circuit://10.0.0.9:11022/1234/X0123456789abcdef`,
		dial: true,
		run:  runJoin,
	}
}

func runJoin(env *Env, inv *invocation) error {
	if len(inv.args) != 1 {
		return usagef("join takes one URL, of a server of the other cluster")
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	if err := c.JoinDialin(env.Ctx, inv.args[0]); err != nil {
		return fmt.Errorf("join %s: %w", inv.args[0], err)
	}
	return nil
}

// workerStk prints a worker's stacks, asked of its control socket.
func workerStk(env *Env, inv *invocation) error {
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	var b strings.Builder
	if err := c.Profile(env.Ctx, inv.args[0], client.ProfileStacks, 0, &b); err != nil {
		return fmt.Errorf("stk %s: %w", inv.args[0], err)
	}
	if env.jsonOut {
		return printJSON(env, struct{ Worker, Stack string }{inv.args[0], b.String()})
	}
	_, err = io.WriteString(env.Stdout, b.String())
	return err
}
