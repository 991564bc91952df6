package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/filecopy"
	"github.com/circuit-project/circuit/internal/ident"
	"github.com/circuit-project/circuit/internal/wire"
)

// Files are copied as `docker cp` does: a file or a whole tree, streamed as
// tar inside checksummed frames, with modes and modification times kept.
// Remote paths are absolute host paths on the server (inside its -fs-root,
// if it was started with one). On either side files are written under
// temporary names and renamed into place only once the whole copy has
// arrived and its checksum matched: a copy cut short leaves no partial
// file under its final name.

// CopyTo copies the local file or tree at local to remote on the server:
// into remote if that is an existing directory, else to remote itself.
func (c *Client) CopyTo(ctx context.Context, local, server, remote string) error {
	dir, base := filepath.Split(filepath.Clean(local))
	if dir == "" {
		dir = "."
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("cp %s: %w", local, err)
	}
	defer root.Close()
	if _, err := root.Lstat(base); err != nil {
		return fmt.Errorf("cp %s: %w", local, err)
	}
	abs, err := filepath.Abs(local)
	if err != nil {
		abs = local
	}
	return c.put(ctx, server, remote, "put", abs, func(w io.Writer) error { return filecopy.Pack(w, root, base, nil) })
}

// CopyTarTo writes the tar stream r into the directory remote on the
// server.
func (c *Client) CopyTarTo(ctx context.Context, r io.Reader, server, remote string) error {
	return c.put(ctx, server, remote, "puttar", "", func(w io.Writer) error {
		_, err := filecopy.Copy(w, r)
		return err
	})
}

func (c *Client) put(ctx context.Context, server, remote, stream, local string, send func(io.Writer) error) error {
	conn, err := c.fileStream(ctx, server, remote, stream, local)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// The server answers once everything is in place, or as soon as it
	// fails, while the client may still be sending: then the send stops.
	status := make(chan error, 1)
	go func() {
		err := wire.ReadStatus(conn)
		if err != nil {
			conn.Close()
		}
		status <- err
	}()
	refused := func(err error) error {
		var r *wire.Refusal
		if errors.As(err, &r) {
			return permission(fault.FromWire(r))
		}
		return nil
	}
	fw := filecopy.NewWriter(conn)
	err = send(fw)
	if err == nil {
		err = fw.Close()
	} else {
		fw.Fail(err) // the server discards what it got
	}
	if err != nil {
		select {
		case serr := <-status:
			if r := refused(serr); r != nil {
				return r
			}
		case <-time.After(2 * time.Second):
		}
		return fmt.Errorf("cp to /%s:%s: %w", server, remote, err)
	}
	if err := <-status; err != nil {
		if r := refused(err); r != nil {
			return r
		}
		return fmt.Errorf("cp to /%s:%s: no answer from the server: %w", server, remote, err)
	}
	return nil
}

// CopyFrom copies the file or tree at remote on the server to local: into
// local if that is an existing directory, else to local itself.
func (c *Client) CopyFrom(ctx context.Context, server, remote, local string) error {
	abs, err := filepath.Abs(local)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot("/")
	if err != nil {
		return err
	}
	defer root.Close()
	name, err := filecopy.Rel(filepath.ToSlash(abs))
	if err != nil {
		return err
	}
	return c.get(ctx, server, remote, abs, func(r *filecopy.Reader) error {
		return filecopy.Unpack(r, root, name, true, r.Drain, nil)
	})
}

// CopyTarFrom writes the file or tree at remote on the server to w as a
// tar stream. Its checksum is checked once it has all been written: an
// error then means what w got is not to be trusted.
func (c *Client) CopyTarFrom(ctx context.Context, server, remote string, w io.Writer) error {
	return c.get(ctx, server, remote, "", func(r *filecopy.Reader) error {
		_, err := filecopy.Copy(w, r)
		return err
	})
}

func (c *Client) get(ctx context.Context, server, remote, local string, recv func(*filecopy.Reader) error) error {
	conn, err := c.fileStream(ctx, server, remote, "get", local)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := recv(filecopy.NewReader(conn)); err != nil {
		var r *filecopy.RemoteError
		if errors.As(err, &r) {
			return fault.New(fault.Remote, r.Msg)
		}
		return fmt.Errorf("cp from /%s:%s: %w", server, remote, err)
	}
	return nil
}

// fileStream opens a copy's stream; local, the client's side of the copy,
// is for the server's records only.
func (c *Client) fileStream(ctx context.Context, server, remote, stream, local string) (net.Conn, error) {
	id, err := ident.ParseID(server)
	if err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	if _, err := filecopy.Rel(remote); err != nil {
		return nil, fault.New(fault.BadRequest, "cp: remote "+err.Error())
	}
	return c.openStreamHeader(ctx, wire.StreamHeader{Path: "/" + id.String(), Stream: stream, File: remote, Local: local})
}
