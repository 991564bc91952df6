package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/circuit-project/circuit/internal/console"
	"github.com/circuit-project/circuit/internal/server"
)

func consoleTokenCmd() *command {
	return &command{
		name:  "console-token",
		short: "print the web console's token, derived from the cluster key",
		long: `A server started with -http ADDR and a cluster key asks every browser for
this token and refuses everything without it. The token is derived from the
key's console subkey (HKDF, then HMAC-SHA256 of "token", in hex): the same
for every console of the cluster until the key changes, so keep it as secret
as the key. Enter it on the console's login page (or open the console once
with ?token=TOKEN): the console exchanges it for a session of its own, kept
in an HttpOnly cookie that never holds the token, and takes the token out
of the address at once. A session ends after 12 hours without a request, or
when the server restarts.

Example:
  circuit console-token -hmac ~/.circuit-key`,
		json: "One JSON object: Token, the token as it would be printed without -json.",
		flags: func(fs *flag.FlagSet) any {
			var key string
			addKeyFlag(fs, &key)
			return &key
		},
		run: runConsoleToken,
	}
}

func runConsoleToken(env *Env, inv *invocation) error {
	if len(inv.args) != 0 {
		return usagef("console-token takes no arguments")
	}
	key, err := readKey(env, *inv.opts.(*string), false)
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
	if env.jsonOut {
		return printJSON(env, struct{ Token string }{token})
	}
	_, err = fmt.Fprintln(env.Stdout, token)
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
	con, err := console.Start(ctx, console.Config{
		Addr: f.httpAddr, Server: srv.URL().String(), Key: key, Write: f.httpWrite,
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
