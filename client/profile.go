package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/api"
	"github.com/circuit-project/circuit/internal/fault"
)

// The kinds of profile Profile takes.
const (
	ProfileCPU       = "cpu"       // for a duration; go tool pprof reads it
	ProfileHeap      = "heap"      // live objects now
	ProfileGoroutine = "goroutine" // every goroutine, as pprof reads it
	ProfileBlock     = "block"     // blocking, recorded for a duration (0: 5 s)
	ProfileMutex     = "mutex"     // contention, recorded for a duration (0: 5 s)
	ProfileTrace     = "trace"     // an execution trace for a duration; go tool trace reads it
	ProfileStacks    = "stacks"    // every goroutine's stack as text, as Stack gives a server's
)

// Profile takes a profile of what is at path and writes it to w: a server
// (/Xid), or a worker, by its anchor (/Xid/R...) or its file in the anchor
// file system (/firehose/clients/R...). d is how long a CPU profile, a
// trace, or a block or mutex recording lasts (at most 2 minutes). A
// process takes one CPU profile or trace at a time. It needs role read.
func (c *Client) Profile(ctx context.Context, path, kind string, d time.Duration, w io.Writer) error {
	at, err := c.processPath(ctx, path)
	if err != nil {
		return err
	}
	p, err := anchor.Parse(at)
	if err != nil {
		return fault.New(fault.BadRequest, err.Error())
	}
	sc, err := c.conn(p.Server)
	if err != nil {
		return err
	}
	stream, err := sc.api.Profile(ctx, &api.ProfileRequest{Path: at, Kind: kind, Nanos: int64(d)})
	if err != nil {
		return c.wrap(ctx, sc, err)
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return c.wrap(ctx, sc, err)
		}
		if _, err := w.Write(m.GetData()); err != nil {
			return err
		}
	}
}

// processPath turns a worker's file in the anchor file system into its
// anchor; a path below a server is returned as it is.
func (c *Client) processPath(ctx context.Context, path string) (string, error) {
	if p, err := anchor.Parse(path); err == nil && p.Server != 0 {
		return path, nil
	}
	entries, err := c.List(ctx, path)
	if err != nil {
		return "", err
	}
	if len(entries) != 1 || entries[0].Kind != KindWorker || entries[0].Path != path {
		return "", fault.New(fault.BadRequest, fmt.Sprintf("%s is not a server, a worker's anchor, or a worker's file in the anchor file system", path))
	}
	return entries[0].Anchor, nil
}
