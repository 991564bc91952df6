package server

import (
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/filecopy"
	"github.com/circuit-project/circuit/internal/oplog"
	"github.com/circuit-project/circuit/internal/wire"
)

// File streams (circuit cp), on the server's own anchor /Xid:
//
//   - "put": the client sends framed tar (package filecopy) to be written
//     at File, or into it when File is a directory; the server answers
//     with a final status once all is in place.
//   - "puttar": the same, always into the directory File (cp - /Xid:DIR).
//   - "get": the server sends File (a file or a tree) as framed tar.
//
// Paths resolve in s.files: "/" without -fs-root, the -fs-root directory
// with it, which no ".." or symbolic link leaves.
// refusalLinger is how long a failed copy's connection is read on.
const refusalLinger = 5 * time.Second

func isFileStream(name string) bool { return name == "put" || name == "puttar" || name == "get" }

func (s *Server) serveFiles(raw net.Conn, h wire.StreamHeader, op *oplog.Op) {
	conn := raw
	var tally filecopy.Tally
	note := func() {
		op.Note("entries", tally.Entries)
		op.Note("bytes", tally.Bytes)
	}
	end := func(err error) {
		note()
		op.End(err)
	}
	refuse := func(err error) {
		note()
		refuseStream(conn, op, err)
	}
	if h.Path != "/"+s.id.String() {
		refuse(fault.Errorf(fault.BadRequest, "files are copied through the server's own anchor /%s, not %s", s.id, h.Path))
		return
	}
	name, err := filecopy.Rel(h.File)
	if err != nil {
		refuse(fault.New(fault.BadRequest, "cp: "+err.Error()))
		return
	}
	conn.SetDeadline(time.Time{})
	if err := wire.WriteStatus(conn, nil); err != nil {
		end(err)
		return
	}
	switch h.Stream {
	case "get":
		fw := filecopy.NewWriter(conn)
		if err := filecopy.Pack(fw, s.files, name, &tally); err != nil {
			err = fmt.Errorf("cp from %s: %w", h.File, s.rootErr(err))
			fw.Fail(err)
			end(err)
			return
		}
		end(fw.Close())
	default:
		fr := filecopy.NewReader(conn)
		err := filecopy.Unpack(fr, s.files, name, h.Stream == "put", fr.Drain, &tally)
		if err != nil {
			refuse(fault.Errorf(fault.Remote, "cp to %s: %v", h.File, s.rootErr(err))) // its End records it
			// Read on for a moment, so that the client, perhaps still
			// sending, reads the refusal before the connection resets.
			conn.SetReadDeadline(time.Now().Add(refusalLinger))
			io.Copy(io.Discard, conn)
			return
		}
		end(wire.WriteStatus(conn, nil))
	}
}

// rootErr says plainly when a path tried to leave -fs-root (os.Root's
// error for that is not exported, only its text).
func (s *Server) rootErr(err error) error {
	if s.cfg.FSRoot != "" && strings.Contains(err.Error(), "path escapes from parent") {
		return fmt.Errorf("%w (this server confines copies to -fs-root %s)", err, s.cfg.FSRoot)
	}
	return err
}
