package cli

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/label"
	"github.com/circuit-project/circuit/internal/op"
	"github.com/circuit-project/circuit/internal/security"
)

type credFlags struct {
	name, role, selector, path, hmac string
	ttl                              time.Duration
}

// defaultCredTTL is how long a credential lasts unless -ttl says.
const defaultCredTTL = 30 * 24 * time.Hour

func credCmd() *command {
	return &command{
		name:  "cred",
		short: "print a new credential: a name, a role, and optional limits, signed with the cluster key",
		long: `Writes a credential to standard output, to be given to a person or program
instead of the cluster key: with -cred FILE or $CIRCUIT_CRED, every client
command dials in with it. It needs the cluster key (-hmac FILE or
$CIRCUIT_HMAC), which stays the root credential, and contacts no server:
any server holding the key verifies it. When standard output is a file, cred
makes it private (mode 600): a credential file open to group or others is
refused, as a key file is.

Roles, each allowing what the one before allows (circuit help and
docs/CLI.md list every operation's role):
  read     changes nothing: ls, peek, wait, stk, version
  operate  adds making, changing and removing elements, run, exec, cp,
           send, recv, Spawn, kill
  admin    adds suicide, join and revoke

-l SELECTOR limits the servers it acts on to those whose labels match
(the syntax of circuit run -l). -path SUBTREE limits it to one anchor
subtree below each server: -path /jobs allows /X…/jobs and everything
below it on every server, lists only that subtree, and allows no cp.

A server that refuses an operation says who asked and why, and the client
exits with 5:
  permission denied: alice (role read) may not Proc.Make on /X…/job: it needs role operate

Examples:
  circuit cred -name alice -role read > alice.cred
  circuit cred -name deploy -role operate -ttl 24h -l role=web -path /jobs > deploy.cred
  circuit ls -cred alice.cred -d circuit://10.0.0.1:11022/78517/X56e7a2a0d47a7b5d /`,
		json: `One JSON object: ID, Name, Role, Selector, Path, NotAfter, and Credential,
the file's text.`,
		flags: func(fs *flag.FlagSet) any {
			f := &credFlags{}
			fs.StringVar(&f.name, "name", "", "who holds it, as records name them: `NAME`")
			fs.StringVar(&f.role, "role", "", "what it may do: `ROLE` read, operate or admin")
			fs.DurationVar(&f.ttl, "ttl", defaultCredTTL, "how long it lasts, `DURATION` (at most 8784h)")
			fs.StringVar(&f.selector, "l", "", "act only on servers whose labels match `SELECTOR`")
			fs.StringVar(&f.path, "path", "", "act only on the anchor `SUBTREE` below each server, like /jobs")
			addKeyFlag(fs, &f.hmac)
			return f
		},
		run: runCred,
	}
}

func runCred(env *Env, inv *invocation) error {
	f := inv.opts.(*credFlags)
	if len(inv.args) != 0 {
		return usagef("cred takes no arguments, only flags: circuit cred -name NAME -role ROLE")
	}
	if strings.TrimSpace(f.name) == "" {
		return usagef("cred needs -name NAME: who will hold it")
	}
	if _, err := op.ParseRole(f.role); err != nil {
		return usagef("cred needs -role: %v", err)
	}
	if f.selector != "" {
		if _, err := label.Parse(f.selector); err != nil {
			return usagef("-l %q: %v", f.selector, err)
		}
	}
	if f.path != "" {
		if !strings.HasPrefix(f.path, "/") || strings.HasSuffix(f.path, "/...") {
			return usagef("-path %q: a subtree is an anchor path below the server, starting with /, like /jobs", f.path)
		}
		for _, e := range anchor.Split(f.path) {
			if err := anchor.CheckElem(e); err != nil {
				return usagef("-path %q: %v", f.path, err)
			}
		}
	}
	if f.ttl <= 0 || f.ttl > security.MaxCredentialLife {
		return usagef("-ttl %v: a credential lasts more than 0 and at most %v", f.ttl, security.MaxCredentialLife)
	}
	text, err := readKey(env, f.hmac, false)
	if err != nil {
		return err
	}
	if text == nil {
		return usagef("cred signs with the cluster key: give -hmac FILE or $CIRCUIT_HMAC")
	}
	key, err := security.Parse(text)
	if err != nil {
		return usagef("the cluster key: %v", err)
	}
	b, err := key.Mint(security.Claims{Name: f.name, Parent: "key", Role: f.role, Selector: f.selector, Path: f.path}, f.ttl)
	if err != nil {
		return err
	}
	if err := privateStdout(env); err != nil {
		return fmt.Errorf("cred: making the credential file private: %w", err)
	}
	if env.jsonOut {
		c, err := security.ParseCredential(b)
		if err != nil {
			return err
		}
		cl := c.Claims()
		return printJSON(env, struct {
			ID, Name, Role, Selector, Path string
			NotAfter                       time.Time
			Credential                     string
		}{cl.ID, cl.Name, cl.Role, cl.Selector, cl.Path, cl.NotAfter.UTC(), string(b)})
	}
	_, err = env.Stdout.Write(b)
	return err
}
