package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/security"
)

type keyringFlags struct {
	install, use, remove string
	list                 bool
}

func keyringCmd() *command {
	return &command{
		name:  "keyring",
		short: "change the cluster's key without stopping it: install, use and remove keys on every server",
		long: `Acts on the keyring of every server of the cluster and reports for each.
A server accepts every installed key (connections, TLS, credentials,
gossip) and signs, presents and encrypts with the one in use. It keeps its
ring in its -var directory, so a restart keeps it (a ring there wins over
the key -hmac gives, with a warning, once the ring has changed).

Rotating the cluster from key A to key B, each step on every server
before the next, with no restart and no lost connection:

  circuit keygen > B.key
  circuit keyring -install B.key   # every server accepts A and B, uses A
  circuit keyring -use B.key       # every server uses B, still accepts A
  # give clients and servers' -hmac files key B
  circuit keyring -remove A.key    # A is refused everywhere

Credentials made under a key are refused once it is removed: make them
again under the new key (circuit cred). Those of running processes are
made again by their servers when a new key comes into use. Multicast
discovery keeps the key its server started with.

It needs role admin. -remove acts on the dial-in server last, so that a
client still holding the old key reaches every server; run it with the new
key. -list shows each server's keys by ID (a fingerprint, not the key).`,
		example: "circuit keyring -install B.key",
		exits:   "1 when some server refused or did not answer: the others are changed.",
		dial:    true,
		json: `A JSON array, one object per server: Server (its ID), Changed (false if it
was so already), Keys (each with ID and InUse, the key in use first), and
Error, set when that server failed.`,
		flags: func(fs *flag.FlagSet) any {
			f := &keyringFlags{}
			fs.StringVar(&f.install, "install", "", "install the key in `FILE` on every server")
			fs.StringVar(&f.use, "use", "", "use the key in `FILE`, installed, on every server")
			fs.StringVar(&f.remove, "remove", "", "remove the key in `FILE` (or with that ID) from every server")
			fs.BoolVar(&f.list, "list", false, "list every server's keys")
			return f
		},
		run: runKeyring,
	}
}

// keyArg reads the key a keyring flag names: a key file, or for -remove
// also a key's ID.
func keyArg(flagName, v string, idOK bool) (*security.Key, string, error) {
	b, err := os.ReadFile(v)
	if err != nil {
		if idOK && len(v) == 16 && strings.Trim(v, "0123456789abcdef") == "" {
			return nil, v, nil
		}
		return nil, "", usagef("-%s %s: %v", flagName, v, err)
	}
	k, err := security.Parse(b)
	if err != nil {
		return nil, "", usagef("-%s %s: %v", flagName, v, err)
	}
	return k, k.ID(), nil
}

func runKeyring(env *Env, inv *invocation) error {
	f := inv.opts.(*keyringFlags)
	var action, given string
	n := 0
	for _, a := range []struct{ name, v string }{{client.KeyringInstall, f.install}, {client.KeyringUse, f.use}, {client.KeyringRemove, f.remove}} {
		if a.v != "" {
			action, given, n = a.name, a.v, n+1
		}
	}
	if f.list {
		action, n = client.KeyringList, n+1
	}
	switch {
	case n == 0:
		return usagef("keyring needs one of -install FILE, -use FILE, -remove FILE or -list")
	case n > 1:
		return usagef("keyring takes one of -install, -use, -remove and -list at a time")
	case len(inv.args) != 0:
		return usagef("keyring takes no arguments, only one flag")
	}
	var text []byte
	var id string
	if given != "" {
		k, kid, err := keyArg(action, given, action == client.KeyringRemove)
		if err != nil {
			return err
		}
		id = kid
		if action == client.KeyringInstall {
			text = []byte(k.Text())
		}
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	members, err := c.Members(env.Ctx)
	if err != nil {
		return fmt.Errorf("keyring: listing the servers: %w", err)
	}
	// The dial-in server last: once it drops the key this client holds,
	// the client reaches no other server through it.
	slices.SortStableFunc(members, func(a, b client.Member) int {
		switch {
		case a.Addr == c.DialinAddr():
			return 1
		case b.Addr == c.DialinAddr():
			return -1
		}
		return 0
	})
	type result struct {
		Server  string
		Changed bool
		Keys    []client.KeyInfo
		Error   string `json:",omitempty"`
	}
	var results []result
	failed := 0
	for _, m := range members {
		keys, changed, err := c.Keyring(env.Ctx, m.ID, action, text, id)
		r := result{Server: m.ID, Changed: changed, Keys: keys}
		if err != nil {
			r.Error, failed = err.Error(), failed+1
		}
		results = append(results, r)
		if !env.jsonOut {
			fmt.Fprintln(env.Stdout, keyringLine(action, id, r.Server, r.Changed, r.Keys, err))
		}
	}
	if env.jsonOut {
		if err := printJSON(env, results); err != nil {
			return err
		}
	}
	if failed > 0 {
		return errors.New("keyring: " + fmt.Sprint(failed) + " of " + fmt.Sprint(len(members)) + " servers failed (named above); the others are changed")
	}
	return nil
}

// keyringLine reports one server's keyring after an action.
func keyringLine(action, id, server string, changed bool, keys []client.KeyInfo, err error) string {
	if err != nil {
		return fmt.Sprintf("/%s: %v", server, err)
	}
	var ks []string
	for _, k := range keys {
		if k.InUse {
			ks = append(ks, k.ID+" (in use)")
		} else {
			ks = append(ks, k.ID)
		}
	}
	done := map[string]string{client.KeyringInstall: "installed", client.KeyringUse: "now uses", client.KeyringRemove: "removed"}[action]
	switch {
	case action == client.KeyringList:
		return fmt.Sprintf("/%s: %s", server, strings.Join(ks, ", "))
	case !changed:
		done = map[string]string{client.KeyringInstall: "has", client.KeyringUse: "uses", client.KeyringRemove: "does not hold"}[action]
	}
	return fmt.Sprintf("/%s: %s %s; keys %s", server, done, id, strings.Join(ks, ", "))
}
