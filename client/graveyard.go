package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/circuit-project/circuit/internal/anchorfs"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
	"github.com/circuit-project/circuit/internal/ident"
)

// GraveRecord is what a worker left when it ended (seed 003's graveyard),
// kept by the server that ran it. The JSON field names are those of circuit
// graveyard -json.
type GraveRecord struct {
	ID     string   // the worker's ID
	Func   string   // the function it ran
	Binary string   // the SHA-256 of its program's binary
	Server string   // the server that ran it
	Anchor string   // its anchor there
	Dirs   []string `json:",omitempty"`
	// Parent is who spawned it: a worker's ID, or "client NAME at ADDRESS".
	Parent string
	// Replaces is the worker this one replaced (Respawn); "" for none.
	Replaces string `json:",omitempty"`
	Start    time.Time
	End      time.Time
	// Cause is why it ended: "returned", "error: MSG", "panic: MSG",
	// "signal NAME", "failed: MSG", "exit N", "replaced by ID" or "host
	// lost".
	Cause  string
	Stderr string `json:",omitempty"` // the last 16 KiB of its stderr
}

// Graveyard lists the records of ended workers listed in the directory dir
// of the anchor file system (or anywhere below it, with a trailing /...),
// or every record for "/", from every server, newest first. It needs role
// read. Some servers not answering make an *IncompleteError, with what the
// others answered.
func (c *Client) Graveyard(ctx context.Context, dir string) ([]GraveRecord, error) {
	q, err := anchorfs.Parse(dir)
	if err != nil {
		return nil, fault.New(fault.BadRequest, err.Error())
	}
	var mu sync.Mutex
	var out []GraveRecord
	err = c.eachMember(ctx, func(ctx context.Context, id ident.ID) error {
		sc, err := c.conn(id)
		if err != nil {
			return err
		}
		r, err := api.NewDirsClient(sc.cc).Graveyard(ctx, &api.DirsRequest{Path: q.String()})
		if err != nil {
			return c.wrap(ctx, sc, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, b := range r.GetRecords() {
			var g GraveRecord
			if err := json.Unmarshal(b, &g); err != nil {
				return fault.New(fault.Remote, fmt.Sprintf("server %s sent a bad graveyard record: %v", id, err))
			}
			out = append(out, g)
		}
		return nil
	})
	var incomplete *IncompleteError
	if err != nil && !errors.As(err, &incomplete) {
		return nil, err
	}
	slices.SortFunc(out, func(a, b GraveRecord) int {
		if c := b.End.Compare(a.End); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, err
}

// ExpectWorker asks the dial-in server to watch a worker just started on
// another server (its record so far: ID, Func, Binary, Server, Anchor,
// Dirs, Start) and to keep its record, with the cause "host lost", if that
// server is lost before the worker ends. Spawn calls it.
func (c *Client) ExpectWorker(ctx context.Context, r GraveRecord, serial uint64) error {
	sc, err := c.conn(0)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = api.NewDirsClient(sc.cc).Expect(ctx, &api.ExpectRequest{Record: b, Serial: serial})
	return c.wrap(ctx, sc, err)
}
