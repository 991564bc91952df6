package profile

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		r    Request
		ok   bool
		want time.Duration
	}{
		{Request{Kind: CPU, For: time.Second}, true, time.Second},
		{Request{Kind: CPU}, false, 0},
		{Request{Kind: Trace, For: 3 * time.Minute}, false, 0},
		{Request{Kind: Block}, true, DefaultRecord},
		{Request{Kind: Mutex, For: -time.Second}, false, 0},
		{Request{Kind: Heap, For: time.Hour}, true, 0},
		{Request{Kind: "flame"}, false, 0},
	} {
		err := tc.r.Check()
		if (err == nil) != tc.ok || (tc.ok && tc.r.For != tc.want) {
			t.Errorf("%+v: %v, For %v", tc.r, err, tc.r.For)
		}
	}
}

// TestServeAndAsk: a control socket answers each kind, tells a refusal as
// an error before any profile, and one CPU profile runs at a time.
func TestServeAndAsk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go Serve(ln)
	ctx := context.Background()
	for _, r := range []Request{{Kind: Heap}, {Kind: Goroutine}, {Kind: Stacks}, {Kind: Block, For: 10 * time.Millisecond}, {Kind: CPU, For: 200 * time.Millisecond}} {
		var b bytes.Buffer
		if err := Ask(ctx, path, r, &b); err != nil || b.Len() == 0 {
			t.Errorf("%s: %d bytes, %v", r.Kind, b.Len(), err)
		}
		if r.Kind == Stacks && !strings.Contains(b.String(), "profile.TestServeAndAsk") {
			t.Errorf("the stacks do not show the test:\n%s", b.String())
		}
	}
	if err := Ask(ctx, path, Request{Kind: "flame"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no profile") {
		t.Errorf("a bad kind: %v", err)
	}
	running.Lock() // a CPU profile being taken
	err = Ask(ctx, path, Request{Kind: CPU, For: time.Second}, &bytes.Buffer{})
	running.Unlock()
	if !errors.Is(err, ErrBusy) {
		t.Errorf("a CPU profile while one runs: %v", err)
	}
	if err := Write(ctx, &bytes.Buffer{}, Request{Kind: "flame"}); err == nil {
		t.Error("Write of a bad kind")
	}
	if err := Ask(ctx, filepath.Join(t.TempDir(), "none"), Request{Kind: Heap}, &bytes.Buffer{}); err == nil || errors.Is(err, ErrBusy) {
		t.Errorf("asking no socket: %v", err)
	}
}
