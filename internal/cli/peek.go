package cli

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchor"
)

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
  proc     Cmd (Env, Dir, Path, Args, Scrub, Dirs, Result, NoStdin, Tty,
           Cred, Ready), Phase (running or exited), Exit (null, or why it
           failed), ExitCode, Signal, PID, Started, Exited, Result; for a
           worker Ready (when it began its function), Binary (its binary's
           SHA-256) and Build (module, version, VCS revision, Go version,
           -ldflags, as the toolchain recorded them)
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
	el, err := c.PeekAt(env.Ctx, path)
	if err != nil {
		return fmt.Errorf("peek %s: %w", path, err)
	}
	switch st := el.State.(type) {
	case json.RawMessage: // a container
		return peekContainer(env, st)
	case nil:
		if el.Kind == "" {
			return fmt.Errorf("peek %s: %w: no element at this anchor", path, client.ErrNotFound)
		}
		return fmt.Errorf("peek %s: this tool cannot show a %s element", path, el.Kind)
	default:
		return printJSON(env, st)
	}
}

// peekContainer prints a container's inspect document as the engine gave
// it, compacted to one line with -json.
func peekContainer(env *Env, doc json.RawMessage) error {
	doc = bytes.TrimSpace(doc)
	if env.jsonOut {
		var b bytes.Buffer
		if err := json.Compact(&b, doc); err == nil {
			doc = b.Bytes()
		}
	}
	_, err := fmt.Fprintf(env.Stdout, "%s\n", doc)
	return err
}
