package cli

import (
	"fmt"
	"io"
	"strconv"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/kind"
)

func mkchanCmd() *command {
	return &command{
		name:    "mkchan",
		example: "circuit mkchan /X88550014d4c82e4d/hi/charlie 3",
		args:    "PATH CAP",
		short:   "create a channel with buffer capacity CAP (0: unbuffered), as in Go",
		dial:    true,
		run:     runMkchan,
	}
}

func runMkchan(env *Env, inv *invocation) error {
	if len(inv.args) != 2 {
		return usagef("mkchan takes a path and a capacity, e.g. circuit mkchan /X88550014d4c82e4d/this/is/charlie 3")
	}
	path := inv.args[0]
	n, err := strconv.Atoi(inv.args[1])
	if err != nil || n < 0 {
		return usagef("mkchan %s: capacity %q is not a number of messages (0 or more)", path, inv.args[1])
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	if _, err := c.MakeChanAt(env.Ctx, path, n); err != nil {
		return fmt.Errorf("mkchan %s: %w", path, err)
	}
	return nil
}

// subscriptionCmd is mk@join or mk@leave: k is kind.Join or kind.Leave,
// and what says which servers its subscription reports.
func subscriptionCmd(k kind.Kind, what string, run func(env *Env, c *client.Client, path string) error) *command {
	return &command{
		name:    "mk" + k.String(),
		example: "circuit mk" + k.String() + " /X88550014d4c82e4d/watch/" + k.String()[1:],
		args:    "PATH",
		short:   "create a subscription: recv on it yields the path of each server that " + what + " from now on",
		dial:    true,
		run:     pathCommand(run),
	}
}

func mkJoinCmd() *command  { return subscriptionCmd(kind.Join, "joins", runMkJoin) }
func mkLeaveCmd() *command { return subscriptionCmd(kind.Leave, "leaves or fails", runMkLeave) }

func runMkJoin(env *Env, c *client.Client, path string) error {
	_, err := c.MakeSubscriptionAt(env.Ctx, path, string(kind.Join))
	return err
}

func runMkLeave(env *Env, c *client.Client, path string) error {
	_, err := c.MakeSubscriptionAt(env.Ctx, path, string(kind.Leave))
	return err
}

func sendCmd() *command {
	return &command{
		name:    "send",
		example: "echo hello | circuit send /X88550014d4c82e4d/hi/charlie",
		args:    "PATH",
		short:   "send this stdin as one message on a channel; blocks until a receiver or a buffer slot takes it",
		dial:    true,
		run:     pathCommand(runSend),
	}
}

func runSend(env *Env, c *client.Client, path string) error {
	if err := c.ChanAt(path).Send(env.Ctx, env.Stdin); err != nil {
		return err
	}
	return nil
}

func recvCmd() *command {
	return &command{
		name:    "recv",
		exits:   "1 once a closed channel has no messages left (nothing is printed).",
		example: "circuit recv /X88550014d4c82e4d/hi/charlie",
		args:    "PATH",
		short:   "receive one message from a channel or subscription onto this stdout",
		long:    "Exits non-zero, printing nothing, once a closed channel has no messages left.",
		dial:    true,
		run:     pathCommand(runRecv),
	}
}

func runRecv(env *Env, c *client.Client, path string) error {
	r, err := c.ChanAt(path).Recv(env.Ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := io.Copy(env.Stdout, r); err != nil {
		return err
	}
	return nil
}

func closeCmd() *command {
	return &command{
		name:    "close",
		example: "circuit close /X88550014d4c82e4d/hi/charlie",
		args:    "PATH",
		short:   "close a channel: buffered messages still drain, then recv reports it closed",
		dial:    true,
		run:     pathCommand(runClose),
	}
}

func runClose(env *Env, c *client.Client, path string) error {
	if err := c.ChanAt(path).Close(env.Ctx); err != nil {
		return err
	}
	return nil
}
