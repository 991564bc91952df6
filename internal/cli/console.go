package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/circuit-project/circuit/internal/console"
	"github.com/circuit-project/circuit/internal/security"
	"github.com/circuit-project/circuit/internal/server"
)

func consoleTokenCmd() *command {
	return &command{
		name:  "console-token",
		short: "print a web console token: the key's, or a credential's (-cred), whose role the console applies",
		long: `A server started with -http ADDR and a cluster key asks every browser for
a token and refuses everything without one.

With -cred FILE (or $CIRCUIT_CRED and no key) it prints a credential's
token instead: the credential's certificate, an expiry (-ttl, 12 hours by
default) and the credential's signature over both, which the console
checks against its server's keys and revocations. The console then applies
the credential's role: a read credential gets a read-only console (no
output is read, environments are hidden, no writes), operate and admin
get the writes that -http-write allows. A credential limited by -l or
-path is refused: the console shows the whole cluster. The token does not
let the console act as the credential.

The key's token is derived from the key's console subkey (HKDF, then
HMAC-SHA256 of "token", in hex): the same for every console of the cluster
until the key changes, so keep it as secret as the key. Enter a token on the console's login page (or open the console once
with ?token=TOKEN): the console exchanges it for a session of its own, kept
in an HttpOnly cookie that never holds the token, and takes the token out
of the address at once. A session ends after 12 hours without a request, or
when the server restarts.

Examples:
  circuit console-token -hmac ~/.circuit-key
  circuit console-token -cred alice.cred -ttl 1h`,
		json: "One JSON object: Token, the token as it would be printed without -json.",
		flags: func(fs *flag.FlagSet) any {
			f := &consoleTokenFlags{}
			addKeyFlag(fs, &f.hmac)
			fs.StringVar(&f.cred, "cred", "", "print the token of the credential in `FILE` (default $CIRCUIT_CRED when no key is given)")
			fs.DurationVar(&f.ttl, "ttl", 12*time.Hour, "how long a credential's token lasts, `DURATION` (at most 720h, and no longer than the credential)")
			return f
		},
		run: runConsoleToken,
	}
}

type consoleTokenFlags struct {
	hmac, cred string
	ttl        time.Duration
}

func runConsoleToken(env *Env, inv *invocation) error {
	f := inv.opts.(*consoleTokenFlags)
	if len(inv.args) != 0 {
		return usagef("console-token takes no arguments")
	}
	if f.cred != "" || (f.hmac == "" && env.Getenv("CIRCUIT_HMAC") == "" && env.Getenv("CIRCUIT_CRED") != "") {
		if f.hmac != "" {
			return usagef("give -hmac or -cred, not both")
		}
		path := f.cred
		if path == "" {
			path = env.Getenv("CIRCUIT_CRED")
		}
		cf, err := security.LoadCredentialFile(expandHome(path))
		if err != nil {
			return usagef("%v", err)
		}
		token, err := console.CredentialToken(cf.Current(), f.ttl)
		if err != nil {
			return usagef("-ttl: %v", err)
		}
		return printToken(env, token)
	}
	key, err := readKey(env, f.hmac, false)
	if err != nil {
		return err
	}
	if key == nil {
		return usagef("no cluster key: give -hmac FILE or set $CIRCUIT_HMAC (a console without a key asks for no token)")
	}
	token, err := console.Token(key)
	if err != nil {
		return usagef("%v", err)
	}
	return printToken(env, token)
}

// printToken prints a console token, or with -json an object holding it.
func printToken(env *Env, token string) error {
	if env.jsonOut {
		return printJSON(env, struct{ Token string }{token})
	}
	_, err := fmt.Fprintln(env.Stdout, token)
	return err
}

// checkConsoleFlags checks start's -http, -http-write, -http-host and
// -http-tls.
func checkConsoleFlags(f *startFlags) error {
	if f.httpAddr == "" {
		for _, o := range []struct {
			name string
			set  bool
		}{{"-http-write", f.httpWrite}, {"-http-host", f.httpHost != ""}, {"-http-tls", f.httpTLS != ""}} {
			if o.set {
				return usagef("%s needs -http ADDR", o.name)
			}
		}
		return nil
	}
	if _, err := console.ListenAddr(f.httpAddr); err != nil {
		return usagef("-http: %v", err)
	}
	if _, _, err := consoleTLS(f.httpTLS); err != nil {
		return err
	}
	return nil
}

// consoleTLS splits -http-tls CERT,KEY; "" gives "", "".
func consoleTLS(v string) (cert, key string, err error) {
	if v == "" {
		return "", "", nil
	}
	cert, key, ok := strings.Cut(v, ",")
	if !ok || cert == "" || key == "" || strings.Contains(key, ",") {
		return "", "", usagef("-http-tls %q: want CERT,KEY, the paths of a PEM certificate and its key", v)
	}
	return cert, key, nil
}

// consoleHosts splits -http-host NAME[,NAME...].
func consoleHosts(v string) []string {
	var out []string
	for n := range strings.SplitSeq(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// startConsole starts the web console of a started server when -http was
// given (nil otherwise), and says where it is on standard error. key is the
// key file's contents, nil without a key.
func startConsole(ctx context.Context, env *Env, f *startFlags, key []byte, srv *server.Server, log *slog.Logger) (*console.Console, error) {
	if f.httpAddr == "" {
		return nil, nil
	}
	cert, certKey, err := consoleTLS(f.httpTLS)
	if err != nil {
		return nil, err
	}
	if k := srv.Ring().Use(); k != nil {
		key = []byte(k.Text()) // the key in use, which may be the ring's in -var rather than -hmac's
	}
	con, err := console.Start(ctx, console.Config{
		Addr: f.httpAddr, Server: srv.URL().String(), Key: key, Write: f.httpWrite,
		Ring: srv.Ring(), Admit: srv.Admit,
		Members: srv.Members, Ops: srv.Ops(), Logger: log,
		Hosts: consoleHosts(f.httpHost), TLSCert: cert, TLSKey: certKey,
	})
	if err != nil {
		return nil, fmt.Errorf("-http %s: %w", f.httpAddr, err)
	}
	if key == nil && !con.Loopback() {
		log.Warn("the web console listens beyond loopback without a cluster key: anyone who reaches it can read the cluster", "url", con.URL(), "write", f.httpWrite)
	}
	fmt.Fprintf(env.Stderr, "console: %s\n", con.URL())
	return con, nil
}
