package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
)

// RespawnOpts are the choices of a respawn.
type RespawnOpts struct {
	// Binary is a local file, the program the new workers run: uploaded
	// once to each server that needs it and kept there by its digest. ""
	// starts each from its old worker's binary.
	Binary string
	// Grace is how long an old worker has to return once asked to stop
	// (its circuit.Context ends) before it is killed; 0 kills it at once.
	// At most a minute.
	Grace time.Duration
	// Replaced, if not nil, is called after each replacement.
	Replaced func(Replacement)
}

// Replacement is one worker replaced by a respawn.
type Replacement struct {
	Old, New string // the workers' IDs
	Anchor   string // the new worker's anchor: the old one's server, its ID
	Serial   uint64 // the new worker's process's serial (ProcAtSerial)
	Binary   string // the new worker's binary's SHA-256
}

// Respawn replaces each live worker listed in an anchor-file-system
// directory (below it with a trailing /..., or one worker by its file),
// one at a time, in the order of their files: a new worker runs the same
// function with the same arguments and directories on the same server,
// from opts.Binary or its old worker's binary. Each old worker is asked to
// stop only once its replacement runs its function, and the next is
// replaced once it has exited. A worker that cannot be replaced (its new
// worker fails to start) stops the respawn: it keeps running, and the
// error says which and why; the replacements made so far are returned.
// It needs role operate.
func (c *Client) Respawn(ctx context.Context, dir string, opts RespawnOpts) ([]Replacement, error) {
	q, err := anchorfs.Parse(dir)
	if err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	if len(q.Dir) == 0 {
		return nil, fault.New(fault.BadRequest, "respawn takes a directory of the anchor file system, like /service/..., not "+dir)
	}
	if opts.Grace < 0 || opts.Grace > time.Minute {
		return nil, fault.New(fault.BadRequest, fmt.Sprintf("a grace period of %v: want 0 to 1m0s", opts.Grace))
	}
	var bin *localBinary
	if opts.Binary != "" {
		if bin, err = openBinary(opts.Binary); err != nil {
			return nil, err
		}
	}
	files, err := c.dirFiles(ctx, q, false, 0)
	if err != nil {
		return nil, fmt.Errorf("respawn %s: listing its workers, nothing replaced: %w", dir, err)
	}
	slices.SortFunc(files, func(a, b anchorfs.File) int { return strings.Compare(a.Path(), b.Path()) })
	var out []Replacement
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f.Worker] {
			continue // listed in another directory too
		}
		seen[f.Worker] = true
		sum := ""
		if bin != nil {
			if sum, err = bin.storeOn(ctx, c, f.Anchor); err != nil {
				return out, fmt.Errorf("respawn %s: worker %s: %w", dir, f.Worker, err)
			}
		}
		r, err := c.RespawnAt(ctx, f.Anchor, sum, opts.Grace)
		if err != nil {
			return out, fmt.Errorf("respawn %s: %w", dir, err)
		}
		out = append(out, r)
		if opts.Replaced != nil {
			opts.Replaced(r)
		}
	}
	return out, nil
}

// RespawnAt replaces the worker whose anchor is at (/Xid/R...), as Respawn does,
// from the binary with SHA-256 sum stored on its server ("" for its own),
// giving it grace to return. It returns once the old worker has exited.
func (c *Client) RespawnAt(ctx context.Context, at, sum string, grace time.Duration) (Replacement, error) {
	sc, err := c.serverOf(at)
	if err != nil {
		return Replacement{}, err
	}
	r, err := api.NewProcClient(sc.cc).Respawn(ctx, &api.RespawnRequest{Path: at, BinarySha256: sum, GraceNanos: int64(grace)})
	if err != nil {
		return Replacement{}, c.wrap(ctx, sc, err)
	}
	var rec GraveRecord
	if err := json.Unmarshal(r.GetRecord(), &rec); err != nil {
		return Replacement{}, fault.New(fault.Remote, "the server's record of the new worker: "+err.Error())
	}
	// The dial-in server keeps the new worker's record if its host is
	// lost, as for a Spawn; without it only that record would be missing.
	if err := c.ExpectWorker(ctx, rec, r.GetSerial()); err != nil && !errors.Is(err, ErrDenied) {
		fmt.Fprintf(os.Stderr, "circuit: respawn: the dial-in server will not record worker %s if its host is lost: %v\n", rec.ID, err)
	}
	return Replacement{Old: rec.Replaces, New: r.GetWorker(), Anchor: r.GetPath(), Serial: r.GetSerial(), Binary: rec.Binary}, nil
}

// localBinary is a program file to be stored on servers, by its digest.
type localBinary struct {
	path   string
	sum    string
	size   int64
	stored map[string]bool // the servers known to store it
}

func openBinary(path string) (*localBinary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fault.New(fault.BadRequest, fmt.Sprintf("the binary: %v", err))
	}
	defer f.Close()
	sum, size, err := FileDigest(f)
	if err != nil {
		return nil, fmt.Errorf("reading the binary %s: %w", path, err)
	}
	return &localBinary{path: path, sum: sum, size: size, stored: map[string]bool{}}, nil
}

// storeOn makes sure the server of the anchor at stores the binary, uploading it
// at most once, and returns its digest.
func (b *localBinary) storeOn(ctx context.Context, c *Client, at string) (string, error) {
	p, err := anchor.Parse(at)
	if err != nil {
		return "", fault.New(fault.Remote, "a worker's anchor: "+err.Error())
	}
	server := p.Server.String()
	if b.stored[server] {
		return b.sum, nil
	}
	st, err := c.StatBinary(ctx, server, b.sum)
	if err != nil {
		return "", err
	}
	if !st.Present {
		r, err := os.Open(b.path)
		if err != nil {
			return "", err
		}
		defer r.Close()
		if _, err := c.UploadBinary(ctx, server, b.sum, b.size, r); err != nil {
			return "", err
		}
	}
	b.stored[server] = true
	return b.sum, nil
}
