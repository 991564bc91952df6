// Package testsupport holds what tests share, and its packages start what
// tests run:
//
//   - build: the circuit binary (race or static), built once per test
//     process, and other programs of the module;
//   - testcluster: real servers on loopback, as processes or in-process;
//   - hostcluster: servers as separate hosts, one Docker container each;
//   - testimage: small Docker images made without a registry;
//   - testnet: network namespaces and a slow link between two.
//
// Eventually, here, is how tests wait for a condition instead of sleeping.
package testsupport

import (
	"testing"
	"time"
)

// Poll is how often Eventually tries its condition, at most: after a
// condition that took longer than Poll, it waits that long instead.
const Poll = 20 * time.Millisecond

// Eventually calls cond every Poll until it returns nil, and fails the test
// with the last error cond returned if timeout passes first. cond is called
// at least once, and not again once the deadline has passed.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Wait(timeout, cond); err != nil {
		t.Fatal(err)
	}
}

// Wait is Eventually without a test: it returns nil once cond does, or,
// after timeout, an error that says how long it waited and wraps cond's
// last error.
func Wait(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		began := time.Now()
		err := cond()
		if err == nil {
			return nil
		}
		now := time.Now()
		if !now.Before(deadline) {
			return &TimeoutError{Timeout: timeout, Last: err}
		}
		// A slow condition (a CLI run, a docker exec) waits as long as it
		// took, so polling takes at most half the time.
		pause := max(Poll, now.Sub(began))
		timer := time.NewTimer(min(pause, deadline.Sub(now)))
		<-timer.C
	}
}

// TimeoutError is Wait's error: the condition still failed after Timeout,
// last with Last.
type TimeoutError struct {
	Timeout time.Duration
	Last    error
}

func (e *TimeoutError) Error() string {
	return "after " + e.Timeout.String() + ": " + e.Last.Error()
}

func (e *TimeoutError) Unwrap() error { return e.Last }
