package cli

import (
	"fmt"
	"strings"

	"github.com/circuit-project/circuit/internal/ident"
)

func cpCmd() *command {
	return &command{
		name:  "cp",
		args:  "SRC DST",
		short: "copy files and directories to or from a server, like docker cp",
		long: `One of SRC and DST is on a server, written /Xid:/host/path; the other is a
local path, or - for a tar stream on standard input or output.

A directory is copied whole. When DST is an existing directory the copy goes
into it; otherwise it is created under that name. Modes and modification
times are kept, and a checksum of the whole stream is verified. Files are
written under temporary names and renamed into place only once everything
has arrived intact, so a copy cut short leaves no partial file behind.

Remote paths are host paths on the server; a server started with -fs-root
DIR takes them inside DIR, and no .. or symbolic link leaves it.

Examples:
  circuit cp ./site /X88550014d4c82e4d:/srv/www
  circuit cp /X88550014d4c82e4d:/var/log/app.log .
  tar -C conf -c . | circuit cp - /X88550014d4c82e4d:/etc/app
  circuit cp /X88550014d4c82e4d:/etc/app - | tar -t`,
		dial: true,
		run:  runCp,
	}
}

// remoteSpec splits /Xid:/path; ok is false for a local path.
func remoteSpec(s string) (server, path string, ok bool, err error) {
	rest, found := strings.CutPrefix(s, "/X")
	if !found {
		return "", "", false, nil
	}
	id, p, found := strings.Cut(rest, ":")
	if !found {
		return "", "", false, nil
	}
	sid, err := ident.ParseID("X" + id)
	if err != nil {
		return "", "", true, usagef("%q: %v", s, err)
	}
	if !strings.HasPrefix(p, "/") {
		return "", "", true, usagef("%q: the path on the server must be absolute", s)
	}
	return sid.String(), p, true, nil
}

func runCp(env *Env, inv *invocation) error {
	if len(inv.args) != 2 {
		return usagef("cp takes SRC and DST, e.g. circuit cp ./file /X88550014d4c82e4d:/tmp/file")
	}
	src, dst := inv.args[0], inv.args[1]
	ss, sp, sRemote, err := remoteSpec(src)
	if err != nil {
		return err
	}
	ds, dp, dRemote, err := remoteSpec(dst)
	if err != nil {
		return err
	}
	if sRemote == dRemote {
		return usagef("cp copies between this host and a server: exactly one of SRC and DST is /Xid:/path")
	}
	c, err := connect(env, inv)
	if err != nil {
		return err
	}
	switch {
	case dRemote && src == "-":
		err = c.CopyTarTo(env.Ctx, env.Stdin, ds, dp)
	case dRemote:
		err = c.CopyTo(env.Ctx, src, ds, dp)
	case dst == "-":
		err = c.CopyTarFrom(env.Ctx, ss, sp, env.Stdout)
	default:
		err = c.CopyFrom(env.Ctx, ss, sp, dst)
	}
	if err != nil {
		return fmt.Errorf("cp %s %s: %w", src, dst, err)
	}
	return nil
}
