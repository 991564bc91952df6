package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/ident"
)

// MemberTimeout bounds how long a call that asks every server (a listing
// of the anchor file system, a kill by directory) waits for any one of
// them. A server that does not answer in time is reported in an
// *IncompleteError, and the others' answers are kept.
var MemberTimeout = 3 * time.Second

// IncompleteError says that some servers did not answer a call made to
// every server; the result holds what the others answered.
type IncompleteError struct {
	Servers []string // the IDs of the servers that did not answer
	Err     error    // the first of their errors
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("%d server(s) did not answer (%s): %v", len(e.Servers), strings.Join(e.Servers, ", "), e.Err)
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// eachMember calls f on every server the dial-in server sees, in
// parallel, each with MemberTimeout. Servers that left meanwhile are
// skipped; those that fail otherwise make an *IncompleteError, unless the
// failure is the caller's (a bad request, its own context).
func (c *Client) eachMember(ctx context.Context, f func(ctx context.Context, id ident.ID) error) error {
	members, err := c.members(ctx)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var missing []string
	var firstErr, fatal error
	for _, m := range members {
		id, err := ident.ParseID(m.ID)
		if err != nil {
			continue
		}
		wg.Go(func() {
			mctx, cancel := context.WithTimeout(ctx, MemberTimeout)
			defer cancel()
			err := f(mctx, id)
			var lost *HostLostError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
			case errors.As(err, &lost) && lost.NotMember:
			case errors.Is(err, ErrBadRequest) || ctx.Err() != nil:
				if fatal == nil {
					fatal = err
				}
			default:
				missing = append(missing, m.ID)
				if firstErr == nil {
					firstErr = err
				}
			}
		})
	}
	wg.Wait()
	if fatal != nil {
		return fatal
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return &IncompleteError{Servers: missing, Err: firstErr}
	}
	return nil
}

// dirFiles gathers the anchor files every server reports for a query.
func (c *Client) dirFiles(ctx context.Context, q anchorfs.Query, kill bool, grace time.Duration) ([]anchorfs.File, error) {
	var mu sync.Mutex
	var files []anchorfs.File
	req := &api.DirsRequest{Path: q.String(), GraceNanos: int64(grace)}
	err := c.eachMember(ctx, func(ctx context.Context, id ident.ID) error {
		sc, err := c.conn(id)
		if err != nil {
			return err
		}
		call := api.NewDirsClient(sc.cc).List
		if kill {
			call = api.NewDirsClient(sc.cc).Kill
		}
		r, err := call(ctx, req)
		if err != nil {
			return c.wrap(ctx, sc, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, f := range r.GetFiles() {
			file, err := anchorfs.ParseFile(f.GetPath(), f.GetAnchor())
			if err != nil {
				return fault.New(fault.Remote, fmt.Sprintf("server %s reported a bad anchor file: %v", id, err))
			}
			files = append(files, file)
		}
		return nil
	})
	return files, err
}

// listDirs lists the anchor file system at a parsed path, as List does.
func (c *Client) listDirs(ctx context.Context, q anchorfs.Query) ([]Entry, error) {
	files, err := c.dirFiles(ctx, q, false, 0)
	var incomplete *IncompleteError
	if err != nil && !errors.As(err, &incomplete) {
		return nil, err
	}
	view, verr := anchorfs.View(q, files)
	if verr != nil {
		if err != nil {
			return nil, err // it may be on a server that did not answer
		}
		return nil, fault.New(fault.NotFound, verr.Error())
	}
	out := make([]Entry, 0, len(view))
	for _, e := range view {
		out = append(out, entryOf(e))
	}
	return out, err
}

func entryOf(e anchorfs.Entry) Entry {
	if e.Dir {
		return Entry{Path: e.Path, Kind: KindDir}
	}
	return Entry{Path: e.Path, Kind: KindWorker, Anchor: e.Anchor}
}

// Kinds of the anchor file system's entries in a listing.
const (
	KindDir    = "dir"    // a directory with at least one worker below it
	KindWorker = "worker" // a file: a worker listed in a directory
)

// Kill kills the workers listed in an anchor-file-system directory, as
// seed 003's 4kill does: "/firehose/clients/spam" kills those listed in
// it, "/firehose/clients/..." those anywhere below, and a path ending in a
// worker ID that one worker. It returns once the workers have exited, with
// the files they had there, sorted; none is not an error. Servers that did
// not answer make an *IncompleteError alongside what the others killed.
func (c *Client) Kill(ctx context.Context, path string) ([]Entry, error) {
	return c.KillGrace(ctx, path, 0)
}

// KillGrace is Kill that first asks the workers to stop: each gets SIGTERM,
// which cancels circuit.Context in a worker, and is killed (SIGKILL) only if
// it has not exited within grace (at most a minute; 0 kills at once).
func (c *Client) KillGrace(ctx context.Context, path string, grace time.Duration) ([]Entry, error) {
	q, err := anchorfs.Parse(path)
	if err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	if len(q.Dir) == 0 {
		return nil, fault.New(fault.BadRequest, "kill takes a directory of the anchor file system, like /firehose/clients/..., not "+path)
	}
	files, err := c.dirFiles(ctx, q, true, grace)
	var incomplete *IncompleteError
	if err != nil && !errors.As(err, &incomplete) {
		return nil, err
	}
	out := make([]Entry, 0, len(files))
	for _, f := range files {
		out = append(out, Entry{Path: f.Path(), Kind: KindWorker, Anchor: f.Anchor})
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return slices.CompactFunc(out, func(a, b Entry) bool { return a.Path == b.Path }), err
}

// BinaryStat is a binary in a server's store.
type BinaryStat struct {
	SHA256  string // lower-case hex
	Present bool
	Path    string // where the server stores it, to start it from
	Size    int64
}

func fromBinaryStat(st *api.BinaryStat) BinaryStat {
	return BinaryStat{SHA256: st.GetSha256(), Present: st.GetPresent(), Path: st.GetPath(), Size: st.GetSize()}
}

// StatBinary asks the server with the given ID whether it stores the
// binary with a SHA-256 digest (lower-case hex).
func (c *Client) StatBinary(ctx context.Context, server, sum string) (BinaryStat, error) {
	sc, err := c.server(server)
	if err != nil {
		return BinaryStat{}, err
	}
	st, err := api.NewBinaryClient(sc.cc).Stat(ctx, &api.BinaryRequest{Sha256: sum})
	if err != nil {
		return BinaryStat{}, c.wrap(ctx, sc, err)
	}
	return fromBinaryStat(st), nil
}

// uploadChunk is the size of an upload's messages.
const uploadChunk = 1 << 20

// UploadBinary stores a binary of size bytes, read from r, on the server
// with the given ID. The server keeps it only if all of it arrives and it
// hashes to sum; otherwise nothing is stored and the error says why (a
// read error of r aborts the upload).
func (c *Client) UploadBinary(ctx context.Context, server, sum string, size int64, r io.Reader) (BinaryStat, error) {
	sc, err := c.server(server)
	if err != nil {
		return BinaryStat{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := api.NewBinaryClient(sc.cc).Upload(ctx)
	if err != nil {
		return BinaryStat{}, c.wrap(ctx, sc, err)
	}
	buf := make([]byte, uploadChunk)
	first, sent := true, int64(0)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 || first {
			chunk := &api.BinaryChunk{Data: buf[:n]}
			if first {
				chunk.Sha256, chunk.Size, first = sum, size, false
			}
			if err := stream.Send(chunk); err != nil {
				_, err = stream.CloseAndRecv() // the server's reason
				return BinaryStat{}, fmt.Errorf("upload to %s cut short after %d of %d bytes: %w", server, sent, size, c.wrap(ctx, sc, err))
			}
			sent += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			cancel() // the server discards what it got
			return BinaryStat{}, fmt.Errorf("upload to %s cut short after %d of %d bytes: reading the binary: %w", server, sent, size, rerr)
		}
	}
	st, err := stream.CloseAndRecv()
	if err != nil {
		return BinaryStat{}, fmt.Errorf("upload to %s: %w", server, c.wrap(ctx, sc, err))
	}
	return fromBinaryStat(st), nil
}

// FileDigest returns the lower-case hex SHA-256 digest and the size of a
// file's contents, as UploadBinary wants them.
func FileDigest(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
