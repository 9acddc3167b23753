package watcher

import (
	"fmt"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// TestBatchChangedTimes checks the time each published Service carries: the
// slice's last-change-trigger-time when it is valid, else when the watcher
// saw the change; the earliest of a batch's changes; none for a Full batch.
func TestBatchChangedTimes(t *testing.T) {
	h := newCoalescerHarness(t, nil)
	start := h.clk.Now()
	h.c.send(h.ctx, update{apply: func(s *Store) bool { return s.UpsertService(newSvc("ns", "a", svcPortNum("http", 80, 8080))) }})
	h.sync()
	if b := h.next().batch; !b.Full || b.Changed != nil || !b.FirstEvent.IsZero() {
		t.Fatalf("first batch: Full=%v Changed=%v FirstEvent=%v; want a Full batch without times", b.Full, b.Changed, b.FirstEvent)
	}

	slice := func(name, trigger string, addr string) *discoveryv1.EndpointSlice {
		es := newSlice("ns", name, "a", discoveryv1.AddressTypeIPv4, slicePorts("http", 8080), newEp(addr))
		if trigger != "" {
			es.Annotations = map[string]string{lastChangeTriggerTime: trigger}
		}
		return es
	}
	upsert := func(es *discoveryv1.EndpointSlice) {
		h.c.send(h.ctx, update{apply: func(s *Store) bool { return s.UpsertSlice(es) }})
	}

	// A valid trigger time, earlier than when the watcher saw the change.
	h.clk.Step(time.Second)
	seen := h.clk.Now()
	trigger := seen.Add(-300 * time.Millisecond)
	upsert(slice("a-1", trigger.Format(time.RFC3339Nano), "10.0.0.1"))
	// A later change of the same Service in the same batch keeps the
	// earliest time.
	h.clk.Step(time.Millisecond)
	upsert(slice("a-2", "", "10.0.0.2"))
	b := h.stepUntilBatch(testMinDelay).batch
	if got := b.Changed[key("ns", "a")]; !got.Equal(trigger) {
		t.Errorf("Changed[ns/a] = %v, want the slice's trigger time %v", got, trigger)
	}
	if !b.FirstEvent.Equal(seen) {
		t.Errorf("FirstEvent = %v, want %v", b.FirstEvent, seen)
	}

	// Stale (before the watcher started), in the future and malformed
	// trigger times fall back to when the watcher saw the change.
	for i, bad := range []string{start.Add(-time.Hour).Format(time.RFC3339Nano), h.clk.Now().Add(time.Hour).Format(time.RFC3339Nano), "yesterday"} {
		h.clk.Step(time.Second)
		seen := h.clk.Now()
		upsert(slice("a-1", bad, fmt.Sprintf("10.0.1.%d", i)))
		b := h.stepUntilBatch(testMinDelay).batch
		if got := b.Changed[key("ns", "a")]; !got.Equal(seen) {
			t.Errorf("trigger %q: Changed[ns/a] = %v, want when the watcher saw it (%v)", bad, got, seen)
		}
	}
}

// TestStoreWithoutOwnerHasNoTimes checks that a Store used on its own
// (worldgen, tests) publishes no times rather than zero ones.
func TestStoreWithoutOwnerHasNoTimes(t *testing.T) {
	s, err := NewStore(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.UpsertService(newSvc("ns", "a", svcPortNum("http", 80, 8080)))
	views, changed := s.takeChanges()
	if len(views) != 1 || len(changed) != 0 {
		t.Fatalf("takeChanges = %d views, %v; want 1 view and no times", len(views), changed)
	}
}
