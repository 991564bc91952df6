package circuit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/circuit-project/circuit/client"
	"github.com/circuit-project/circuit/internal/anchor"
	"github.com/circuit-project/circuit/internal/anchorfs"
)

// Chan is a circuit channel element carrying values of type T, each one
// message of JSON. Like a Go channel it may be buffered or not (capacity
// 0: a send waits for a receiver); unlike one, it lives on a server and is
// reached from any process of the cluster. Its zero value is not usable:
// make one with MakeChan, or receive one as a spawned function's argument.
type Chan[T any] struct {
	path string
}

// MakeChan makes a channel of the given capacity at path, an anchor below
// a server (/Xserver/a/b). A path naming just a server ("/Xserver"), or
// "", puts it under a fresh name on that server, or on the worker's own
// server in a worker and a random one elsewhere.
func MakeChan[T any](path string, capacity int) (Chan[T], error) {
	return MakeChanContext[T](context.Background(), path, capacity)
}

// MakeChanContext is MakeChan with a context.
func MakeChanContext[T any](ctx context.Context, path string, capacity int) (Chan[T], error) {
	c, err := Client()
	if err != nil {
		return Chan[T]{}, err
	}
	if path == "" {
		if me := Self(); me != nil {
			path = me.Server()
		} else {
			m, err := chooseServer(ctx, c, "")
			if err != nil {
				return Chan[T]{}, fmt.Errorf("make chan: %w", err)
			}
			path = m.ID
		}
	}
	if p, err := anchor.Parse("/" + strings.TrimPrefix(path, "/")); err == nil && len(p.Elems) == 0 && !p.Recursive {
		path = p.String() + "/C" + anchorfs.NewWorkerID()[1:]
	}
	if _, err := c.MakeChanAt(ctx, path, capacity); err != nil {
		return Chan[T]{}, fmt.Errorf("make chan %s: %w", path, err)
	}
	return Chan[T]{path: path}, nil
}

// ChanAt returns the channel at path, which another process made.
func ChanAt[T any](path string) Chan[T] { return Chan[T]{path: path} }

// Path is the channel's anchor.
func (ch Chan[T]) Path() string { return ch.path }

func (ch Chan[T]) handle() (*client.ChanHandle, error) {
	if ch.path == "" {
		return nil, errors.New("circuit.Chan: the zero Chan is not a channel; use MakeChan")
	}
	c, err := Client()
	if err != nil {
		return nil, err
	}
	return c.ChanAt(ch.path), nil
}

// Send sends v, blocking until the channel takes it: into its buffer, or
// by a receiver.
func (ch Chan[T]) Send(v T) error { return ch.SendContext(context.Background(), v) }

// SendContext is Send with a context.
func (ch Chan[T]) SendContext(ctx context.Context, v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("send on %s: encoding %T: %w", ch.path, v, err)
	}
	h, err := ch.handle()
	if err != nil {
		return err
	}
	if err := h.Send(ctx, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("send on %s: %w", ch.path, err)
	}
	return nil
}

// Recv receives the next value. Once the channel is closed and drained,
// it returns io.EOF.
func (ch Chan[T]) Recv() (T, error) { return ch.RecvContext(context.Background()) }

// RecvContext is Recv with a context.
func (ch Chan[T]) RecvContext(ctx context.Context) (T, error) {
	var v T
	h, err := ch.handle()
	if err != nil {
		return v, err
	}
	r, err := h.Recv(ctx)
	if err != nil {
		if errors.Is(err, client.ErrClosed) {
			return v, io.EOF
		}
		return v, fmt.Errorf("recv on %s: %w", ch.path, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return v, fmt.Errorf("recv on %s: %w", ch.path, err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("recv on %s: decoding %T: %w", ch.path, v, err)
	}
	return v, nil
}

// Close closes the channel: receivers get what is buffered, then io.EOF.
func (ch Chan[T]) Close() error {
	h, err := ch.handle()
	if err != nil {
		return err
	}
	return h.Close(context.Background())
}

// Scrub removes the channel element, aborting waiting senders and
// receivers.
func (ch Chan[T]) Scrub() error {
	c, err := Client()
	if err != nil {
		return err
	}
	return c.ScrubAt(context.Background(), ch.path)
}

// MarshalJSON encodes the channel as its path.
func (ch Chan[T]) MarshalJSON() ([]byte, error) { return json.Marshal(ch.path) }

// UnmarshalJSON decodes a channel from its path.
func (ch *Chan[T]) UnmarshalJSON(b []byte) error {
	var path string
	if err := json.Unmarshal(b, &path); err != nil {
		return fmt.Errorf("circuit.Chan: %w", err)
	}
	if _, err := anchor.Parse(path); err != nil {
		return fmt.Errorf("circuit.Chan: %w", err)
	}
	ch.path = path
	return nil
}
