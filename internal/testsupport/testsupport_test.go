package testsupport

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestWaitSucceeds(t *testing.T) {
	calls := 0
	err := Wait(10*time.Second, func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("try %d", calls)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Wait = %v after %d calls, want nil after 3", err, calls)
	}
}

var errNotYet = errors.New("not yet")

func TestWaitTimesOutWithTheLastError(t *testing.T) {
	calls := 0
	start := time.Now()
	err := Wait(100*time.Millisecond, func() error {
		calls++
		return fmt.Errorf("try %d: %w", calls, errNotYet)
	})
	took := time.Since(start)
	var te *TimeoutError
	if !errors.As(err, &te) || te.Timeout != 100*time.Millisecond {
		t.Fatalf("Wait = %#v, want a *TimeoutError of 100ms", err)
	}
	if !errors.Is(err, errNotYet) {
		t.Errorf("Wait's error %v does not wrap the condition's", err)
	}
	if want := fmt.Sprintf("after 100ms: try %d: not yet", calls); err.Error() != want {
		t.Errorf("Wait's error = %q, want the last of %d tries: %q", err, calls, want)
	}
	if took < 100*time.Millisecond || calls < 2 || calls > int(took/Poll)+2 {
		t.Errorf("%d calls in %v, polling every %v", calls, took, Poll)
	}
}

func TestWaitCallsOnceAtLeast(t *testing.T) {
	calls := 0
	if err := Wait(0, func() error { calls++; return nil }); err != nil || calls != 1 {
		t.Fatalf("Wait(0) of a true condition = %v after %d calls", err, calls)
	}
}

// fatalTB records Fatal and ends its goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestEventuallyFailsWithTheLastError(t *testing.T) {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	calls := 0
	go func() {
		defer close(done)
		Eventually(f, 50*time.Millisecond, func() error {
			calls++
			return fmt.Errorf("still %d", calls)
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Eventually did not return within 10s of a 50ms timeout")
	}
	if !strings.HasPrefix(f.msg, "after 50ms: still ") || !strings.HasSuffix(f.msg, fmt.Sprint(calls)) {
		t.Fatalf("Eventually failed with %q after %d calls, want the last error", f.msg, calls)
	}
}
