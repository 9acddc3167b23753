package poll

import (
	"testing"
	"time"
)

func TestWaitHoldsAfterSomeCalls(t *testing.T) {
	calls := 0
	if !Wait(10*time.Second, func() bool { calls++; return calls == 5 }) {
		t.Fatal("Wait gave up on a condition that held on the fifth call")
	}
	if calls != 5 {
		t.Errorf("cond called %d times, want 5 (no call after it held)", calls)
	}
}

func TestWaitGivesUp(t *testing.T) {
	calls := 0
	if Wait(20*time.Millisecond, func() bool { calls++; return false }) {
		t.Fatal("Wait reported a condition that never held as met")
	}
	if calls < 2 {
		t.Errorf("cond called %d times in 20ms, want it asked again before giving up", calls)
	}
}

// recorder is a testing.TB whose Fatalf records instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
}

func TestUntilFailsNamingWhat(t *testing.T) {
	r := &recorder{TB: t}
	Until(r, time.Millisecond, "the answer", func() bool { return false })
	if r.failed == "" {
		t.Fatal("Until did not fail on a condition that never held")
	}
	r = &recorder{TB: t}
	Until(r, time.Second, "the answer", func() bool { return true })
	if r.failed != "" {
		t.Fatalf("Until failed on a condition that held: %s", r.failed)
	}
}
