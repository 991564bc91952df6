package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/circuit-project/circuit/client"
)

// dialFlags are the flags every client command shares.
type dialFlags struct {
	addr     string
	discover string
	hmac     string
}

func addDialFlags(fs *flag.FlagSet) *dialFlags {
	d := &dialFlags{}
	fs.StringVar(&d.addr, "d", "", "dial-in server `URL`: circuit://HOST:PORT/PID/ID, or HOST:PORT")
	fs.StringVar(&d.discover, "discover", "", "find a dial-in server by UDP multicast on this group `ADDR:PORT` (default $CIRCUIT_DISCOVER)")
	addKeyFlag(fs, &d.hmac)
	return d
}

func addKeyFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "hmac", "", "cluster key `FILE`: authenticate and encrypt all traffic (default $CIRCUIT_HMAC)")
}

// expandHome expands a leading ~ even when the shell did not, as when the
// variable was set with quotes: export CIRCUIT="~/.circuit".
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}

// readKey reads the key file named by the flag or $CIRCUIT_HMAC.
func readKey(env *Env, flagValue string) ([]byte, error) {
	path, from := flagValue, "-hmac"
	if path == "" {
		path, from = env.Getenv("CIRCUIT_HMAC"), "$CIRCUIT_HMAC"
	}
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(expandHome(path))
	if err != nil {
		return nil, fmt.Errorf("reading the key file (%s): %w", from, err)
	}
	return b, nil
}

// connect dials into the cluster as the flags and environment say, trying
// in order: -d, -discover, $CIRCUIT, $CIRCUIT_DISCOVER.
func connect(env *Env, inv *invocation) (*client.Client, error) {
	d := inv.dial
	key, err := readKey(env, d.hmac)
	if err != nil {
		return nil, err
	}
	opt := client.Options{Key: key}
	var tried string
	switch {
	case d.addr != "":
		opt.Addr, tried = d.addr, "-d "+d.addr
	case d.discover != "":
		opt.Discover, tried = d.discover, "multicast -discover "+d.discover
	case env.Getenv("CIRCUIT") != "":
		file := expandHome(env.Getenv("CIRCUIT"))
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, &client.DialinLostError{Addr: "(unknown)", Err: fmt.Errorf("$CIRCUIT names %s, which should hold a circuit URL: %w", file, err)}
		}
		opt.Addr, tried = strings.TrimSpace(string(b)), "the URL in "+file+" ($CIRCUIT)"
		if opt.Addr == "" {
			return nil, &client.DialinLostError{Addr: "(unknown)", Err: fmt.Errorf("%s ($CIRCUIT) is empty; it should hold a circuit URL", file)}
		}
	case env.Getenv("CIRCUIT_DISCOVER") != "":
		opt.Discover = env.Getenv("CIRCUIT_DISCOVER")
		tried = "multicast $CIRCUIT_DISCOVER=" + opt.Discover
	default:
		return nil, usagef("no dial-in server: give -d URL or -discover ADDR:PORT, or set $CIRCUIT to a file holding a URL, or $CIRCUIT_DISCOVER")
	}
	c, err := client.Connect(env.Ctx, opt)
	if err != nil {
		var auth *client.AuthError
		var dl *client.DialinLostError
		if errors.As(err, &auth) || errors.As(err, &dl) {
			return nil, fmt.Errorf("tried %s: %w", tried, err)
		}
		return nil, &client.DialinLostError{Addr: opt.Addr, Err: fmt.Errorf("tried %s: %w", tried, err)}
	}
	inv.dials = c
	return c, nil
}
