package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/security"
)

// dialFlags are the flags every client command shares.
type dialFlags struct {
	addr     string
	discover string
	hmac     string
	cred     string
}

func addDialFlags(fs *flag.FlagSet) *dialFlags {
	d := &dialFlags{}
	fs.StringVar(&d.addr, "d", "", "dial-in server `URL`: circuit://HOST:PORT/PID/ID, or HOST:PORT")
	fs.StringVar(&d.discover, "discover", "", "find a dial-in server by UDP multicast on this group `ADDR:PORT` (default $CIRCUIT_DISCOVER)")
	addKeyFlag(fs, &d.hmac)
	fs.StringVar(&d.cred, "cred", "", "credential `FILE` to dial in with instead of the cluster key, as a process started with a credential finds in $CIRCUIT_CRED (default $CIRCUIT_CRED)")
	return d
}

// findCred names the credential file to dial in with, when no key is
// given: -cred, else $CIRCUIT_CRED (what a server sets for a process it
// gave a credential, Cmd.Cred). An explicit -cred wins over a key from the
// environment; -cred and -hmac together are refused.
func findCred(env *Env, d *dialFlags) (string, error) {
	switch {
	case d.cred != "" && d.hmac != "":
		return "", usagef("give -hmac or -cred, not both")
	case d.cred != "":
		return expandHome(d.cred), nil
	case d.hmac != "" || env.Getenv("CIRCUIT_HMAC") != "":
		return "", nil
	}
	return expandHome(env.Getenv("CIRCUIT_CRED")), nil
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

// credentialName is the name of the key among systemd's credentials
// (LoadCredential=circuit.key:/etc/circuit/hmac in a unit): the server
// reads it from $CREDENTIALS_DIRECTORY, so the key's path appears on no
// command line and in no environment.
const credentialName = "circuit.key"

// keyFile is the key file found and where its name came from.
type keyFile struct {
	path, from string
	// systemd: the file is systemd's credential, in a directory private to
	// the unit. Its mode is not checked: systemd grants the service user
	// read access by an ACL, whose mask shows in the group bits.
	systemd bool
}

// findKey names the key file given by the flag, else $CIRCUIT_HMAC, else
// (for a server started by systemd) the credential circuit.key; the zero
// keyFile if none.
func findKey(env *Env, flagValue string) keyFile {
	switch {
	case flagValue != "":
		return keyFile{path: expandHome(flagValue), from: "-hmac"}
	case env.Getenv("CIRCUIT_HMAC") != "":
		return keyFile{path: expandHome(env.Getenv("CIRCUIT_HMAC")), from: "$CIRCUIT_HMAC"}
	case env.Getenv("CREDENTIALS_DIRECTORY") != "":
		p := filepath.Join(env.Getenv("CREDENTIALS_DIRECTORY"), credentialName)
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			// Found, or there but unreadable: reading it says why.
			return keyFile{p, "the systemd credential " + credentialName, true}
		}
	}
	return keyFile{}
}

// readKey reads the key file that findKey names. A key file open to group
// or others is refused for a server (as ssh refuses an open private key)
// and warned about for a client.
func readKey(env *Env, flagValue string, server bool) ([]byte, error) {
	kf := findKey(env, flagValue)
	if kf.path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(kf.path)
	if err != nil {
		if server && errors.Is(err, os.ErrNotExist) {
			return nil, fault.Errorf(fault.BadRequest, "reading the key file (%s): %v (make one with: circuit keygen > %s)", kf.from, err, kf.path)
		}
		if errors.Is(err, os.ErrPermission) {
			err = fmt.Errorf("%w (%s)", err, ownership(kf.path))
		}
		return nil, fmt.Errorf("reading the key file (%s): %w", kf.from, err)
	}
	if err := security.CheckFileMode(kf.path); err != nil && !kf.systemd {
		if server {
			return nil, fault.Errorf(fault.BadRequest, "the key file (%s): %v", kf.from, err)
		}
		fmt.Fprintf(env.Stderr, "circuit: warning: %v\n", err)
	}
	return b, nil
}

// connect dials into the cluster as the flags and environment say, trying
// in order: -d, -discover, $CIRCUIT, $CIRCUIT_DISCOVER.
func connect(env *Env, inv *invocation) (*client.Client, error) {
	d := inv.dial
	cred, err := findCred(env, d)
	if err != nil {
		return nil, err
	}
	var key []byte
	if cred == "" {
		if key, err = readKey(env, d.hmac, false); err != nil {
			return nil, err
		}
	} else if _, err := security.LoadCredentialFile(cred); err != nil {
		// Said before dialling, as bad input: it is not the server's.
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	opt := client.Options{Key: key, CredFile: cred}
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

// ownership says who owns path and its directory, and who this process
// is, for an error about a file it may not read.
func ownership(path string) string {
	desc := func(p string) string {
		fi, err := os.Stat(p)
		if err != nil {
			return p + ": " + err.Error()
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			return fmt.Sprintf("%s: owner uid %d, gid %d, mode %04o", p, st.Uid, st.Gid, fi.Mode().Perm())
		}
		return fmt.Sprintf("%s: mode %04o", p, fi.Mode().Perm())
	}
	return fmt.Sprintf("%s; %s; this process runs as uid %d, gid %d", desc(path), desc(filepath.Dir(path)), os.Getuid(), os.Getgid())
}
