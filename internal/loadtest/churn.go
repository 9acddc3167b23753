package loadtest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ChurnOptions describe the open-loop churn phases that follow the
// single-change phase of every Kind: for each rate, changes are issued at
// that fixed rate for Duration, whether or not the clients keep up, each to
// a Service drawn from a Zipf distribution.
type ChurnOptions struct {
	// Rates are the changes per second, one phase each, in the order given.
	// No rates: no churn.
	Rates []int
	// Duration is how long each phase issues changes.
	Duration time.Duration
	// Seed and ZipfS drive the choice of Services: the same seed gives every
	// Kind the same sequence. ZipfS is the exponent s (> 1) of
	// P(rank k) ∝ (1+k)^-s.
	Seed  uint64
	ZipfS float64
	// Drain bounds the wait, after the last change of a phase, until every
	// change has reached every affected client; changes still stale then
	// count as not converged, and the Kind gets no further phases (it is
	// behind, and a higher rate would only be further behind).
	Drain time.Duration
	// KindMaxRate skips phases above a rate for a Kind (the SnapshotCache
	// sends every subscribed assignment on every change and cannot keep up
	// with high rates).
	KindMaxRate map[Kind]int
}

func (o *ChurnOptions) defaults(changeTimeout time.Duration) error {
	for _, r := range o.Rates {
		if r < 1 {
			return fmt.Errorf("churn rates must be positive, got %d", r)
		}
	}
	if len(o.Rates) == 0 {
		return nil
	}
	if o.Duration <= 0 {
		return fmt.Errorf("churn duration must be positive, got %s", o.Duration)
	}
	if o.ZipfS == 0 {
		o.ZipfS = 1.1
	}
	if o.ZipfS <= 1 {
		return fmt.Errorf("churn Zipf exponent must be above 1, got %v", o.ZipfS)
	}
	if o.Drain <= 0 {
		o.Drain = changeTimeout
	}
	return nil
}

// churnPicker draws the Service of each churn change: Zipf-distributed ranks
// (rank 0 most often) mapped to Services through a permutation from the
// same seed, so that the hot Services are spread over the index range (and
// over the clients when each subscribes to a few). Equal seeds give equal
// sequences.
type churnPicker struct {
	zipf *rand.Zipf
	perm []int
}

func newChurnPicker(seed uint64, s float64, services int) *churnPicker {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	perm := r.Perm(services)
	return &churnPicker{zipf: rand.NewZipf(r, s, 1, uint64(services-1)), perm: perm}
}

func (p *churnPicker) next() int { return p.perm[p.zipf.Uint64()] }

// churnTracker keeps, for one churn phase, when each change reached the last
// client subscribed to its Service. A client is fresh for a change once it
// has received a state of that Service at least as new as the change; since
// clients only move forward, the converged changes of a Service are a prefix
// of its changes, so the tracker keeps per Service the first change not yet
// converged and how many subscribers are fresh for it. Safe for concurrent
// use: one issuer, many clients.
type churnTracker struct {
	services []serviceTrack
	open     atomic.Int64 // issued, not yet converged
	sealed   atomic.Bool  // no more changes will be issued
	done     chan struct{}
	doneOnce sync.Once
}

// serviceTrack is the churn state of one Service. Versions count the
// Service's changes in this phase: version v is changes[v-1], and version 0
// is the state at the start of the phase.
type serviceTrack struct {
	mu       sync.Mutex
	versions map[uint64]int32 // assignment digest → version
	changes  []trackedChange
	seen     []int32 // by subscriber slot: newest version received
	next     int     // index of the first change not converged
	freshFor int     // subscribers whose seen ≥ version next+1
	unknown  int     // assignments received that no version of this phase has
}

type trackedChange struct {
	issued, fresh int64 // unix nanos; fresh 0 until converged
}

// newChurnTracker tracks a phase in which Service i has subscribers[i]
// subscribers, each known by a slot in [0, subscribers[i]), and starts with
// the assignment whose digest is initial[i] (version 0).
func newChurnTracker(subscribers []int, initial []uint64) *churnTracker {
	t := &churnTracker{services: make([]serviceTrack, len(subscribers)), done: make(chan struct{})}
	for i, n := range subscribers {
		t.services[i].seen = make([]int32, n)
		t.services[i].versions = map[uint64]int32{initial[i]: 0}
	}
	return t
}

// issue records that the i-th Service changed at now to content whose
// assignment digest is digest. It must be called before the change can
// reach any client.
func (t *churnTracker) issue(i int, digest uint64, now int64) {
	s := &t.services[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes = append(s.changes, trackedChange{issued: now})
	s.versions[digest] = int32(len(s.changes))
	t.open.Add(1)
	if s.next == len(s.changes)-1 {
		s.freshFor = 0 // nobody can have content that did not exist
		t.advanceLocked(s, now)
	}
}

// saw records that the subscriber in slot of the i-th Service received (and
// ACKed) an assignment with digest at now.
func (t *churnTracker) saw(i, slot int, digest uint64, now int64) {
	s := &t.services[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.versions[digest]
	if !ok {
		s.unknown++
		return
	}
	old := s.seen[slot]
	if v <= old {
		return
	}
	s.seen[slot] = v
	if want := int32(s.next + 1); s.next < len(s.changes) && old < want && want <= v {
		s.freshFor++
		t.advanceLocked(s, now)
	}
}

// advanceLocked marks converged every leading change for which all
// subscribers are fresh. Must be called with s.mu held.
func (t *churnTracker) advanceLocked(s *serviceTrack, now int64) {
	for s.next < len(s.changes) && s.freshFor == len(s.seen) {
		s.changes[s.next].fresh = now
		s.next++
		if t.open.Add(-1) == 0 && t.sealed.Load() {
			t.doneOnce.Do(func() { close(t.done) })
		}
		s.freshFor = 0
		want := int32(s.next + 1)
		for _, v := range s.seen {
			if v >= want {
				s.freshFor++
			}
		}
	}
}

// seal says that no more changes will be issued; the tracker's done
// channel closes once every issued change has converged.
func (t *churnTracker) seal() {
	t.sealed.Store(true)
	if t.open.Load() == 0 {
		t.doneOnce.Do(func() { close(t.done) })
	}
}

// staleness returns the staleness of every converged change (time from
// issue until its last subscriber was fresh) and, for the changes not
// converged at end, the time from issue until end: a lower bound.
func (t *churnTracker) staleness(end int64) (converged, open []time.Duration, unknown int) {
	for i := range t.services {
		s := &t.services[i]
		s.mu.Lock()
		for _, c := range s.changes {
			if c.fresh != 0 {
				converged = append(converged, time.Duration(c.fresh-c.issued))
			} else {
				open = append(open, time.Duration(end-c.issued))
			}
		}
		unknown += s.unknown
		s.mu.Unlock()
	}
	return converged, open, unknown
}

// ChurnResult is what one Kind did in one churn phase.
type ChurnResult struct {
	Rate     int           // changes per second asked for
	Duration time.Duration // how long changes were issued
	// Skipped, when not empty, says why the phase did not run; nothing
	// else is set then.
	Skipped string
	Changes int // issued
	// IssueLag is the most that a change was issued after its due time: the
	// driver's own delay (a busy machine), which is not the server's.
	IssueLag time.Duration
	// Staleness holds, per converged change, the time from its issue until
	// the last affected client had received its Service at least as new.
	Staleness []time.Duration
	// NotConverged are the changes still stale when the drain ended, with
	// their age then (a lower bound of their staleness).
	NotConverged []time.Duration
	// CPUCores is the server's CPU time over the issue window divided by
	// that window.
	CPUCores float64
	// PushesPerClientPerSec counts responses of every type, per client, over
	// the issue window; BytesDown/UpPerSec are proto.Size over all clients.
	PushesPerClientPerSec          float64
	BytesDownPerSec, BytesUpPerSec float64
	// FinalMismatches counts the resources, over all clients, that differ
	// from the world's final state after the drain and a settle period.
	FinalMismatches int
	// Unknown counts assignments received that neither the phase's start
	// nor any of its changes produced (it should be 0).
	Unknown int
}

// StalenessQuantile is the nearest-rank q-quantile of the staleness of all
// issued changes, a not-converged change counting at its age when the drain
// ended. Since that age is only a lower bound of its staleness, so is the
// quantile (lowerBound true) unless at least rank+1 converged changes are no
// staler than it.
func (c ChurnResult) StalenessQuantile(q float64) (d time.Duration, lowerBound bool) {
	all := append(slices.Clone(c.Staleness), c.NotConverged...)
	if len(all) == 0 {
		return 0, false
	}
	slices.Sort(all)
	rank := max(0, min(int(float64(len(all))*q+0.999999)-1, len(all)-1))
	d = all[rank]
	exact := 0
	for _, s := range c.Staleness {
		if s <= d {
			exact++
		}
	}
	return d, exact < rank+1
}

// Behind is true when some change had not converged at the end of the
// drain.
func (c ChurnResult) Behind() bool { return len(c.NotConverged) > 0 }
