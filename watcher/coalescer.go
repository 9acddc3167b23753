package watcher

import (
	"context"
	"time"

	"k8s.io/utils/clock"

	"github.com/switchboard-xds/switchboard/model"
)

// update is one change for the owner goroutine to apply to the Store. Sources
// build updates from their events; apply must not retain the Store.
type update struct {
	// apply mutates the Store and reports whether any view changed. It is
	// nil for the sync marker.
	apply func(*Store) bool
	// synced marks that the source has delivered its whole initial state.
	synced bool
	// at is when the source saw the change; send sets it when zero.
	at time.Time
}

// updateBuffer lets sources run a little ahead of the owner goroutine. It is
// small on purpose: backpressure is fine, as client-go's informers buffer
// their notifications without bound and the manifest poller can wait.
const updateBuffer = 64

// coalescer is the single goroutine that owns the Store. It applies updates
// in order and publishes the dirty Services as one model.Batch once a burst has
// been quiet for minDelay, or maxDelay after the first unpublished change,
// whichever comes first (the shape of kube-proxy's BoundedFrequencyRunner
// and Contour's holdoff). Nothing is published before the sync marker; the
// first batch is Full. The sink runs on a goroutine of its own, so the owner
// keeps folding changes into the Store while a slow sink works; the next
// batch then carries all of them.
type coalescer struct {
	cfg     config
	store   *Store
	updates chan update
}

func newCoalescer(cfg config) *coalescer {
	store := newStore(cfg.filter)
	store.started = cfg.clock.Now()
	return &coalescer{cfg: cfg, store: store, updates: make(chan update, updateBuffer)}
}

// send hands u to the owner goroutine. It returns false, dropping u, if ctx
// is done first.
func (c *coalescer) send(ctx context.Context, u update) bool {
	if ctx.Err() != nil {
		return false
	}
	if u.at.IsZero() {
		u.at = c.cfg.clock.Now()
	}
	select {
	case c.updates <- u:
		return true
	case <-ctx.Done():
		return false
	}
}

// run is the owner loop. It returns when ctx is done and no sink call is in
// flight.
func (c *coalescer) run(ctx context.Context, sink model.Sink) {
	batches := make(chan model.Batch) // unbuffered: a batch goes only to an idle publisher
	done := make(chan struct{}, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for b := range batches {
			sink(b)
			done <- struct{}{}
		}
	}()
	o := owner{c: c, batches: batches}
	defer func() {
		o.stopTimer()
		close(batches)
		<-exited
	}()
	for {
		var fired <-chan time.Time
		if o.timer != nil {
			fired = o.timer.C()
		}
		select {
		case <-ctx.Done():
			return
		case u := <-c.updates:
			o.apply(u)
		case <-fired:
			o.timer = nil
			o.schedule()
		case <-done:
			o.busy = false
			o.schedule()
		}
	}
}

// owner is the state of the owner loop.
type owner struct {
	c       *coalescer
	batches chan<- model.Batch
	synced  bool
	busy    bool // a batch is with the sink
	pending bool // the Store has changes not yet published
	first   time.Time
	last    time.Time
	// firstEvent is when the source saw the first pending change.
	firstEvent time.Time
	timer      clock.Timer // armed only while synced, pending and not busy
}

func (o *owner) apply(u update) {
	if u.synced {
		if !o.synced {
			o.synced = true
			o.publish(true)
		}
		return
	}
	o.c.store.setTrigger(u.at)
	if !u.apply(o.c.store) {
		return
	}
	now := o.c.cfg.clock.Now()
	if !o.pending {
		o.pending, o.first, o.firstEvent = true, now, u.at
	}
	o.last = now
	o.schedule()
}

// due is when the pending changes must be published: minDelay after the last
// change, but no later than maxDelay after the first.
func (o *owner) due() time.Time {
	quiet := o.last.Add(o.c.cfg.minDelay)
	ceiling := o.first.Add(o.c.cfg.maxDelay)
	if ceiling.Before(quiet) {
		return ceiling
	}
	return quiet
}

// schedule publishes if the pending changes are due, or arms the timer for
// when they will be. The due time only moves later as changes arrive, so an
// armed timer is left alone and re-armed when it fires early; that keeps a
// stream of changes from creating a timer each.
func (o *owner) schedule() {
	if !o.synced || !o.pending || o.busy {
		return
	}
	wait := o.due().Sub(o.c.cfg.clock.Now())
	if wait <= 0 {
		o.publish(false)
		return
	}
	if o.timer == nil {
		o.timer = o.c.cfg.clock.NewTimer(wait)
	}
}

func (o *owner) publish(full bool) {
	o.stopTimer()
	o.pending = false
	b := model.Batch{Full: full}
	if full {
		b.Services = o.c.store.TakeAll()
		b.Routes, b.Grants = o.c.store.takeMesh(true)
	} else {
		b.Services, b.Changed = o.c.store.takeChanges()
		b.Routes, b.Grants = o.c.store.takeMesh(false)
		b.FirstEvent = o.firstEvent
		if len(b.Services) == 0 && len(b.Routes) == 0 && len(b.Grants) == 0 {
			return // everything changed back since the last batch
		}
	}
	o.c.cfg.metrics.batch(len(b.Services), o.c.store.Len())
	o.c.cfg.log.Debug("publishing batch", "full", full, "services", len(b.Services))
	o.busy = true
	o.batches <- b
}

func (o *owner) stopTimer() {
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
}
