package cli

import (
	"bytes"
	"encoding/json"
	"fmt"

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

// printJSON prints v as one JSON document: indented for people, or on one
// line with -json.
func printJSON(env *Env, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if env.jsonOut {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
	return err
}

func peekCmd() *command {
	return &command{
		name:    "peek",
		example: "circuit peek /X88550014d4c82e4d",
		args:    "PATH",
		short:   "print the state of the element at PATH as JSON",
		dial:    true,
		json: `The same document as without -json, on one line. By kind:
  server   ID, URL, Addr, PID, Started, Version, GoVersion, Keyed, Labels, DC,
           Members (each ID, Addr, URL, PID, Labels, DC), Elements
  proc     Cmd (Env, Dir, Path, Args, Scrub, Dirs, Result, NoStdin), Phase
           (running or exited), Exit (null, or why it failed), ExitCode,
           Signal, PID, Started, Exited
  chan     Cap, Closed, Aborted, NumSend, NumRecv
  @join, @leave   Kind, Pending, Delivered, Aborted
  dns      Address, Records (name to resource records)
  docker   the Docker engine's own inspection document`,
		run: runPeek,
	}
}

func runPeek(env *Env, inv *invocation) error {
	if len(inv.args) != 1 {
		return usagef("peek takes one path")
	}
	p, err := anchor.Parse(inv.args[0])
	if err != nil {
		return usagef("%v", err)
	}
	if p.Server == 0 || p.Recursive {
		return usagef("peek %s: want the path of one element, such as /X88550014d4c82e4d", inv.args[0])
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	path := inv.args[0]
	kind, err := c.KindAt(env.Ctx, path)
	if err != nil {
		return fmt.Errorf("peek %s: %w", path, err)
	}
	switch kind {
	case "server":
		info, err := c.ServerInfo(env.Ctx, p.Server.String())
		if err != nil {
			return fmt.Errorf("peek %s: %w", path, err)
		}
		return printJSON(env, info)
	case "proc":
		st, err := c.ProcAt(path).Peek(env.Ctx)
		if err != nil {
			return fmt.Errorf("peek %s: %w", path, err)
		}
		return printJSON(env, st)
	case "chan":
		st, err := c.ChanAt(path).Peek(env.Ctx)
		if err != nil {
			return fmt.Errorf("peek %s: %w", path, err)
		}
		return printJSON(env, st)
	case "@join", "@leave":
		st, err := c.ChanAt(path).PeekSubscription(env.Ctx)
		if err != nil {
			return fmt.Errorf("peek %s: %w", path, err)
		}
		return printJSON(env, st)
	case "dns":
		st, err := c.NameserverAt(path).Peek(env.Ctx)
		if err != nil {
			return fmt.Errorf("peek %s: %w", path, err)
		}
		return printJSON(env, st)
	case "docker":
		doc, err := c.ContainerAt(path).Peek(env.Ctx)
		if err != nil {
			return fmt.Errorf("peek %s: %w", path, err)
		}
		doc = bytes.TrimSpace(doc)
		if env.jsonOut {
			var b bytes.Buffer
			if err := json.Compact(&b, doc); err == nil {
				doc = b.Bytes()
			}
		}
		_, err = fmt.Fprintf(env.Stdout, "%s\n", doc)
		return err
	case "":
		return fmt.Errorf("peek %s: %w: no element at this anchor", path, client.ErrNotFound)
	}
	return fmt.Errorf("peek %s: this tool cannot show a %s element", path, kind)
}

func stkCmd() *command {
	return &command{
		name:    "stk",
		example: "circuit stk /X88550014d4c82e4d",
		args:    "/Xid",
		short:   "print the goroutine stacks of a server",
		dial:    true,
		json:    "One JSON object: Server (its ID) and Stack (the text of every goroutine's stack).",
		run:     runStk,
	}
}

func runStk(env *Env, inv *invocation) error {
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
