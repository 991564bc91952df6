package cli

import "fmt"

func mkdnsCmd() *command {
	return &command{
		name:    "mkdns",
		example: "circuit mkdns /X88550014d4c82e4d/dns 127.0.0.1:7653",
		args:    "PATH [ADDR]",
		short:   "start a DNS server element, on ADDR (host:port) or a free port of its server's address",
		dial:    true,
		run:     runMkdns,
	}
}

func runMkdns(env *Env, inv *invocation) error {
	if len(inv.args) < 1 || len(inv.args) > 2 {
		return usagef("mkdns takes a path and an optional address, e.g. circuit mkdns /X88550014d4c82e4d/mydns 127.0.0.1:7711")
	}
	path, addr := inv.args[0], ""
	if len(inv.args) == 2 {
		addr = inv.args[1]
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	if _, err := c.MakeNameserverAt(env.Ctx, path, addr); err != nil {
		return fmt.Errorf("mkdns %s: %w", path, err)
	}
	return nil
}

func setCmd() *command {
	return &command{
		name:    "set",
		example: `circuit set /X88550014d4c82e4d/dns "miek.nl. 3600 IN MX 10 mx.miek.nl."`,
		args:    "PATH RECORD",
		short:   `add a resource record to a DNS element, e.g. "miek.nl. 3600 IN MX 10 mx.miek.nl."`,
		dial:    true,
		run:     runSet,
	}
}

func runSet(env *Env, inv *invocation) error {
	if len(inv.args) != 2 {
		return usagef(`set takes a path and one record in quotes, e.g. circuit set /X88550014d4c82e4d/mydns "miek.nl. 3600 IN MX 10 mx.miek.nl."`)
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	if err := c.NameserverAt(inv.args[0]).Set(env.Ctx, inv.args[1]); err != nil {
		return fmt.Errorf("set %s: %w", inv.args[0], err)
	}
	return nil
}

func unsetCmd() *command {
	return &command{
		name:    "unset",
		example: "circuit unset /X88550014d4c82e4d/dns miek.nl.",
		args:    "PATH NAME",
		short:   "remove every record of NAME from a DNS element",
		dial:    true,
		run:     runUnset,
	}
}

func runUnset(env *Env, inv *invocation) error {
	if len(inv.args) != 2 {
		return usagef("unset takes a path and a name, e.g. circuit unset /X88550014d4c82e4d/mydns miek.nl.")
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	if err := c.NameserverAt(inv.args[0]).Unset(env.Ctx, inv.args[1]); err != nil {
		return fmt.Errorf("unset %s: %w", inv.args[0], err)
	}
	return nil
}
