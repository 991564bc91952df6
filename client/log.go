package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/circuit-project/circuit/internal/api"
)

// LogRecord is one record of a server's operation log, as its audit file
// (start -audit) holds it: every operation has a record when it begins and
// one when it ends, under its number, and an operation that started a
// process has a third when the process exits.
type LogRecord struct {
	Seq   uint64    // the operation's number on its server
	Time  time.Time // when the record was made
	Event string    // "begin", "end" or "exit"
	Op    string    // the operation, as docs/CLI.md's table names it: Proc.Make, Stream.run
	Path  string    `json:",omitempty"` // the anchor it acts on
	Who   string    `json:",omitempty"` // "key", "anyone", or a credential's name and ID
	From  string    `json:",omitempty"` // the original client's address
	Via   string    `json:",omitempty"` // the relay's address, if it came through one
	// What holds the operation's own facts (a command's cmd.path,
	// cmd.args and cmd.dir; a signal; a copy's file and bytes), and in an
	// exit record the process's exit_code, signal and exit.
	What map[string]any `json:",omitempty"`
	Err  string         `json:",omitempty"` // in an end record, how it failed
	Took string         `json:",omitempty"` // in an end record, how long it ran ("1.5ms")
}

// LogOptions choose the records Log reads.
type LogOptions struct {
	After  uint64 // only those of operations numbered above it
	N      int    // at most the last N operations' (0: all the server keeps, its last 256)
	Follow bool   // then every new record, until ctx ends
}

// Log reads the operation records of the server with the given ID, oldest
// first, calling each for every one; an error from each stops it and is
// returned. It needs role admin: records name every caller's commands.
// With opt.Follow it returns when ctx ends (nil) or the server stops.
func (c *Client) Log(ctx context.Context, id string, opt LogOptions, each func(LogRecord) error) error {
	sc, err := c.server(id)
	if err != nil {
		return err
	}
	stream, err := sc.api.Log(ctx, &api.LogRequest{After: opt.After, N: int32(min(opt.N, 1<<30)), Follow: opt.Follow})
	if err != nil {
		return c.wrap(ctx, sc, err)
	}
	for {
		m, err := stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil && ctx.Err() != nil && opt.Follow:
			return nil
		case err != nil:
			return c.wrap(ctx, sc, err)
		}
		var r LogRecord
		if err := json.Unmarshal(m.GetJson(), &r); err != nil {
			return fmt.Errorf("a log record from %s: %w", id, err)
		}
		if err := each(r); err != nil {
			return err
		}
	}
}
