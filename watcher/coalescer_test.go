package watcher

import (
	"context"
	"fmt"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/switchboard-xds/switchboard/model"
)

const (
	testMinDelay = 5 * time.Millisecond
	testMaxDelay = 50 * time.Millisecond
)

// published is a batch and the fake time at which the sink got it.
type published struct {
	batch model.Batch
	at    time.Time
}

// coalescerHarness runs a coalescer on a fake clock and records batches.
type coalescerHarness struct {
	t       *testing.T
	ctx     context.Context
	clk     *testingclock.FakeClock
	c       *coalescer
	batches chan published
	// hold, when set, is received from before the sink returns.
	hold chan struct{}
}

func newCoalescerHarness(t *testing.T, hold chan struct{}) *coalescerHarness {
	t.Helper()
	clk := testingclock.NewFakeClock(time.Unix(1000, 0))
	cfg, err := Options{MinDelay: testMinDelay, MaxDelay: testMaxDelay, Clock: clk}.config()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &coalescerHarness{t: t, ctx: ctx, clk: clk, c: newCoalescer(cfg), batches: make(chan published, 100), hold: hold}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		h.c.run(ctx, func(b model.Batch) {
			h.batches <- published{b, clk.Now()}
			if h.hold != nil {
				<-h.hold
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	return h
}

// change applies a change that publishes a new view of Service ns/name.
func (h *coalescerHarness) change(name string, port int32) {
	svc := newSvc("ns", name, svcPortNum("http", port, port))
	h.c.send(h.ctx, update{apply: func(s *Store) bool { return s.UpsertService(svc) }})
}

// barrier returns once the owner has applied everything sent before it.
func (h *coalescerHarness) barrier() {
	done := make(chan struct{})
	h.c.send(h.ctx, update{apply: func(*Store) bool { close(done); return false }})
	<-done
}

func (h *coalescerHarness) sync() {
	h.c.send(h.ctx, update{synced: true})
}

// step advances the fake clock and waits until the owner has dealt with any
// timer that fired: either a timer is armed again or a batch came out.
func (h *coalescerHarness) step(d time.Duration) {
	h.barrier()
	h.clk.Step(d)
	eventually(h.t, "the owner to handle the timer", func() bool {
		return h.clk.HasWaiters() || len(h.batches) > 0
	})
}

// stepUntilBatch advances the fake clock by d until a batch comes out
// (at most 100 steps).
func (h *coalescerHarness) stepUntilBatch(d time.Duration) published {
	h.t.Helper()
	for range 100 {
		h.barrier()
		h.clk.Step(d)
		select {
		case p := <-h.batches:
			return p
		case <-time.After(20 * time.Millisecond):
		}
	}
	h.t.Fatal("no batch after 100 steps of the fake clock")
	return published{}
}

func (h *coalescerHarness) next() published {
	h.t.Helper()
	select {
	case p := <-h.batches:
		return p
	case <-time.After(10 * time.Second):
		h.t.Fatal("timed out waiting for a batch")
		return published{}
	}
}

func (h *coalescerHarness) none() {
	h.t.Helper()
	h.barrier()
	if len(h.batches) > 0 {
		h.t.Fatalf("unexpected batch: %+v", <-h.batches)
	}
}

func TestCoalescerNothingBeforeSyncThenFull(t *testing.T) {
	h := newCoalescerHarness(t, nil)
	for i := range 3 {
		h.change(fmt.Sprint("svc", i), 80)
	}
	h.barrier()
	h.clk.Step(time.Hour)
	h.none()
	if h.clk.HasWaiters() {
		t.Fatal("a timer is armed before sync")
	}

	start := h.clk.Now()
	h.sync()
	p := h.next()
	if !p.batch.Full || len(p.batch.Services) != 3 || !p.at.Equal(start) {
		t.Fatalf("first batch: full=%v services=%d at %v; want full, 3, at sync time",
			p.batch.Full, len(p.batch.Services), p.at.Sub(start))
	}
	h.none()
}

func TestCoalescerEmptyWorldIsPublished(t *testing.T) {
	h := newCoalescerHarness(t, nil)
	h.sync()
	if p := h.next(); !p.batch.Full || len(p.batch.Services) != 0 {
		t.Fatalf("first batch = %+v, want an empty full batch", p.batch)
	}
}

func TestCoalescerBurstIsOneBatch(t *testing.T) {
	h := newCoalescerHarness(t, nil)
	h.change("untouched", 80)
	h.sync()
	h.next()

	start := h.clk.Now()
	for i := range 10 {
		h.change(fmt.Sprint("svc", i), 80)
	}
	h.change("svc0", 81) // a second change to one Service in the same burst
	h.step(testMinDelay - time.Nanosecond)
	h.none()
	h.step(time.Nanosecond)
	p := h.next()
	if p.batch.Full || len(p.batch.Services) != 10 || p.at.Sub(start) != testMinDelay {
		t.Fatalf("batch: full=%v services=%d after %v; want 10 dirty services after %v",
			p.batch.Full, len(p.batch.Services), p.at.Sub(start), testMinDelay)
	}
	if _, ok := p.batch.Services[key("ns", "untouched")]; ok {
		t.Error("an unchanged Service is in the batch")
	}
	if got := p.batch.Services[key("ns", "svc0")].Ports[0].Port; got != 81 {
		t.Errorf("svc0 port = %d, want the last value 81", got)
	}
	h.none()
}

func TestCoalescerQuietPeriodRestartsOnChange(t *testing.T) {
	h := newCoalescerHarness(t, nil)
	h.sync()
	h.next()

	start := h.clk.Now()
	h.change("a", 80)
	h.step(3 * time.Millisecond)
	h.change("b", 80)
	h.step(3 * time.Millisecond) // 6 ms after a, 3 ms after b: not quiet yet
	h.none()
	h.step(2 * time.Millisecond)
	p := h.next()
	if len(p.batch.Services) != 2 || p.at.Sub(start) != 8*time.Millisecond {
		t.Fatalf("batch of %d services after %v; want 2 after 8ms", len(p.batch.Services), p.at.Sub(start))
	}
}

func TestCoalescerMaxDelayUnderContinuousChanges(t *testing.T) {
	h := newCoalescerHarness(t, nil)
	h.sync()
	h.next()

	const every = 2 * time.Millisecond // always less than MinDelay: never quiet
	for round := range 3 {
		start := h.clk.Now()
		changes := 0
		var p published
		for {
			h.change(fmt.Sprintf("r%d-svc%d", round, changes), 80)
			changes++
			h.step(every)
			if len(h.batches) > 0 {
				p = h.next()
				break
			}
			if h.clk.Since(start) > 2*testMaxDelay {
				t.Fatalf("round %d: no batch %v after the first change", round, h.clk.Since(start))
			}
		}
		if got := p.at.Sub(start); got != testMaxDelay {
			t.Errorf("round %d: batch after %v, want exactly MaxDelay %v", round, got, testMaxDelay)
		}
		if len(p.batch.Services) != changes {
			t.Errorf("round %d: batch has %d services, want the %d changed so far", round, len(p.batch.Services), changes)
		}
	}
}

func TestCoalescerSlowSinkGetsOneBatchOfEverythingSince(t *testing.T) {
	hold := make(chan struct{})
	h := newCoalescerHarness(t, hold)
	h.sync()
	h.next()
	hold <- struct{}{} // release the full batch

	h.change("a", 80)
	// The release above and this change race with the publisher telling
	// the owner it is idle; step until the batch is out rather than
	// assume one order (this test is about the slow sink, not the delay).
	if p := h.stepUntilBatch(testMinDelay); len(p.batch.Services) != 1 {
		t.Fatalf("first batch has %d services, want 1", len(p.batch.Services))
	}
	// The sink is now blocked; changes pile up in the Store, not in a queue.
	for i := range 5 {
		h.change("a", int32(81+i))
		h.change(fmt.Sprint("b", i), 80)
	}
	h.barrier()
	h.clk.Step(time.Second)
	h.none()
	hold <- struct{}{}
	p := h.next()
	if len(p.batch.Services) != 6 || p.batch.Services[key("ns", "a")].Ports[0].Port != 85 {
		t.Fatalf("batch after slow sink: %d services; want 6 with a at port 85", len(p.batch.Services))
	}
	hold <- struct{}{}
	h.none()
}

func TestCoalescerNoChangeNoTimer(t *testing.T) {
	h := newCoalescerHarness(t, nil)
	h.change("a", 80)
	h.sync()
	h.next()
	h.change("a", 80) // same view: nothing to publish
	h.barrier()
	if h.clk.HasWaiters() {
		t.Fatal("a timer was armed for a change that changed no view")
	}
}

func TestCoalescerStopsWithContext(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	cfg, err := Options{Clock: clk}.config()
	if err != nil {
		t.Fatal(err)
	}
	c := newCoalescer(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	inSink, release := make(chan struct{}), make(chan struct{})
	finished := false
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		c.run(ctx, func(model.Batch) {
			close(inSink)
			<-release
			finished = true
		})
	}()
	c.send(ctx, update{synced: true})
	<-inSink
	cancel()
	select {
	case <-exited:
		t.Fatal("run returned while the sink was still running")
	default:
	}
	close(release)
	<-exited
	if !finished {
		t.Fatal("sink did not finish")
	}
	if c.send(ctx, update{synced: true}) {
		t.Error("send after cancel reported success")
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{MinDelay: -1},
		{MinDelay: 10 * time.Millisecond, MaxDelay: 5 * time.Millisecond},
		{PollInterval: -time.Second},
		{Selector: "!!"},
	} {
		if _, err := o.config(); err == nil {
			t.Errorf("Options%+v: want an error", o)
		}
	}
	c, err := Options{MinDelay: time.Second}.config()
	if err != nil || c.maxDelay != time.Second || c.pollInterval != DefaultPollInterval {
		t.Errorf("defaults: %+v, %v", c, err)
	}
}
