package loadtest

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestChurnPickerIsSeededZipf(t *testing.T) {
	const services, draws = 50, 5000
	seq := func(seed uint64) []int {
		p := newChurnPicker(seed, 1.1, services)
		out := make([]int, draws)
		for i := range out {
			out[i] = p.next()
		}
		return out
	}
	a, b := seq(7), seq(7)
	if !slices.Equal(a, b) {
		t.Fatal("two pickers with the same seed drew different Services")
	}
	if slices.Equal(a, seq(8)) {
		t.Fatal("pickers with different seeds drew the same Services")
	}
	counts := make([]int, services)
	for _, i := range a {
		if i < 0 || i >= services {
			t.Fatalf("picked Service %d of %d", i, services)
		}
		counts[i]++
	}
	// Zipf with s = 1.1 over 50 ranks gives the top rank about 22% of the
	// draws; uniform would give 2%.
	if top := slices.Max(counts); top < draws/10 {
		t.Errorf("most frequent Service drawn %d of %d times; want a skewed (Zipf) choice", top, draws)
	}
	// The hot Service is not simply Service 0: ranks are permuted.
	if hot := slices.Index(counts, slices.Max(counts)); hot == 0 && slices.Index(seq(9), 0) == 0 && slices.Index(seq(10), 0) == 0 {
		t.Errorf("the hottest Service is Service 0 for every seed: ranks are not permuted")
	}
}

// TestChurnTrackerStaleness checks the per-change bookkeeping: a client
// that skips a version is fresh for the skipped change too, a change is
// converged only when its last subscriber is fresh, a Service without
// subscribers converges at once, and changes left open are reported with
// their age.
func TestChurnTrackerStaleness(t *testing.T) {
	// Service 0 has two subscribers, Service 1 none.
	const d0, d1, d2, d3, d4 = 100, 101, 102, 103, 104
	tr := newChurnTracker([]int{2, 0}, []uint64{d0, 200})
	tr.issue(0, d1, 100)
	tr.saw(0, 0, d0, 120) // the state at the start: nothing new
	tr.issue(1, d3, 150)
	tr.issue(0, d2, 200)

	tr.saw(0, 0, d2, 250) // slot 0 skips version 1
	tr.saw(0, 1, 999, 260)
	tr.saw(0, 1, d1, 300) // change 1 converges: both slots fresh
	tr.saw(0, 1, d1, 310) // a repeat changes nothing
	tr.seal()
	select {
	case <-tr.done:
		t.Fatal("done before the last change converged")
	default:
	}
	tr.saw(0, 1, d2, 400) // change 2 converges
	select {
	case <-tr.done:
	default:
		t.Fatal("not done after every change converged")
	}
	conv, open, unknown := tr.staleness(1000)
	slices.Sort(conv)
	if want := []time.Duration{0, 200, 200}; !slices.Equal(conv, want) || len(open) != 0 || unknown != 1 {
		t.Fatalf("staleness = %v, open %v, unknown %d; want %v, none, 1", conv, open, unknown, want)
	}

	// A change that reaches one of two subscribers stays open.
	tr2 := newChurnTracker([]int{2}, []uint64{d0})
	tr2.issue(0, d4, 500)
	tr2.saw(0, 0, d4, 600)
	tr2.seal()
	conv, open, _ = tr2.staleness(1000)
	if len(conv) != 0 || !slices.Equal(open, []time.Duration{500}) {
		t.Fatalf("staleness = %v, open %v; want none converged and one open for 500ns", conv, open)
	}
}

func TestStalenessQuantileBounds(t *testing.T) {
	ms := time.Millisecond
	c := ChurnResult{Staleness: []time.Duration{10 * ms, 20 * ms, 30 * ms, 40 * ms}}
	if d, low := c.StalenessQuantile(0.5); d != 20*ms || low {
		t.Errorf("p50 = %v (lower bound %v), want 20ms exact", d, low)
	}
	// An open change aged 25 ms: the p50 (rank 3 of 5) is 25 ms or more.
	c.NotConverged = []time.Duration{25 * ms}
	if d, low := c.StalenessQuantile(0.5); d != 25*ms || !low {
		t.Errorf("p50 with an open change = %v (lower bound %v), want >25ms", d, low)
	}
	if d, low := c.StalenessQuantile(0.2); d != 10*ms || low {
		t.Errorf("p20 with an open change = %v (lower bound %v), want 10ms exact", d, low)
	}
	if d, low := c.StalenessQuantile(1); d != 40*ms || !low {
		t.Errorf("max with an open change = %v (lower bound %v), want >40ms", d, low)
	}
}

// TestFinalMismatches checks the final-state comparison: a client that holds
// the world's state passes, one with an old or a wrong assignment is caught.
func TestFinalMismatches(t *testing.T) {
	w := newWorld(t, 3, 4)
	h := newHasher()
	want, err := w.expected(h)
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[change]
	var churn atomic.Pointer[churnTracker]
	holding := func(state *expectedState) *client {
		c := newClient(0, w.Name, []int{0, 2}, []int{0, 0}, h, &current, &churn)
		for p, i := range c.services {
			c.clusters[p], c.assigns[p] = state.clusters[i], state.assignments[i]
		}
		return c
	}
	if n := finalMismatches([]*client{holding(want), holding(want)}, want); n != 0 {
		t.Fatalf("clients holding the world: %d mismatches, want 0", n)
	}
	old := &expectedState{clusters: slices.Clone(want.clusters), assignments: slices.Clone(want.assignments)}
	if err := w.ChangeService(1, 2); err != nil {
		t.Fatal(err)
	}
	if err := w.digest(h, want, 2); err != nil {
		t.Fatal(err)
	}
	stale := holding(old)
	if n := finalMismatches([]*client{holding(want), stale}, want); n != 1 {
		t.Fatalf("a client with the old assignment of Service 2: %d mismatches, want 1", n)
	}
	wrong := holding(want)
	wrong.assigns[0] = want.assignments[1] // another Service's content
	if n := finalMismatches([]*client{wrong}, want); n != 1 {
		t.Fatalf("a client with a wrong assignment: %d mismatches, want 1", n)
	}
}

func TestCheckFinalState(t *testing.T) {
	behind := ChurnResult{Rate: 10, FinalMismatches: 3, NotConverged: []time.Duration{time.Second}}
	wrong := ChurnResult{Rate: 10, FinalMismatches: 1}
	cases := []struct {
		name string
		r    Result
		fail bool
	}{
		{"switchboard clean", Result{Kind: KindSwitchboard, Churn: []ChurnResult{{Rate: 10}}}, false},
		{"switchboard behind", Result{Kind: KindSwitchboard, Churn: []ChurnResult{behind}}, true},
		{"peer behind", Result{Kind: KindLinear, Churn: []ChurnResult{behind}}, false},
		{"peer wrong", Result{Kind: KindLinear, Churn: []ChurnResult{wrong}}, true},
		{"skipped", Result{Kind: KindSwitchboard, Churn: []ChurnResult{{Rate: 10, Skipped: "x"}}}, false},
	}
	for _, tc := range cases {
		err := CheckFinalState([]Result{tc.r})
		if (err != nil) != tc.fail {
			t.Errorf("%s: CheckFinalState = %v, want failure %v", tc.name, err, tc.fail)
		}
		if err != nil && !strings.Contains(err.Error(), "rate=10/s") {
			t.Errorf("%s: error %q does not name the rate", tc.name, err)
		}
	}
}
