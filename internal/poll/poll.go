// Package poll is the one way the tests wait for a condition that no event
// announces (a gauge, a file on disk, another process's state): Until
// calls it again and again, a little less often each time, until it holds
// or the time is up. Tests that can wait on an event (a channel, a
// response) wait on that instead; none sleeps for a fixed time.
package poll

import (
	"testing"
	"time"
)

// First and Most bound the pause between two calls of a condition: the
// first pause is First, each one after it twice the one before, up to Most,
// so a condition that holds at once costs nothing and one that takes
// seconds is asked a few times a second.
const (
	First = time.Millisecond
	Most  = 100 * time.Millisecond
)

// Until calls cond until it returns true, and fails t (t.Fatalf, naming
// what) when it has not after timeout. It must be called from the test's
// own goroutine.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Wait(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Wait calls cond until it returns true or timeout passes, and reports
// whether it held. For the callers that fail in their own words.
func Wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	pause := First
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(min(pause, max(time.Until(deadline), 0)))
		pause = min(2*pause, Most)
	}
	return true
}
