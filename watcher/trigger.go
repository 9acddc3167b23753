package watcher

import (
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/switchboard-xds/switchboard/model"
)

// This file carries the time of each change with the data, so that
// convergence (Kubernetes change -> every affected client ACKs it) can be
// measured downstream: the coalescer stamps each update with when the source
// handed it over, the Store keeps the earliest time per dirty Service, and
// the published model.Batch carries it in Changed. One time value per
// Service, not per endpoint.

// lastChangeTriggerTime is the annotation the EndpointSlice controller sets
// to the time of the Pod or Service change that made it write the slice
// (kube-proxy's network programming latency starts from it).
const lastChangeTriggerTime = "endpoints.kubernetes.io/last-change-trigger-time"

// setTrigger tells the Store when the changes it is about to apply
// happened; zero for unknown.
func (s *Store) setTrigger(at time.Time) { s.at = at }

// sliceTrigger makes the slice's own trigger time the time of the change
// being applied, while the returned func is pending: the annotation when it
// is valid, not in the future of the watcher (clock skew) and not before
// the Store's owner started (a stale value from a slice that an earlier
// change wrote, as kube-proxy's endpointschangetracker ignores them too).
func (s *Store) sliceTrigger(es *discoveryv1.EndpointSlice) (restore func()) {
	prev := s.at
	v, ok := es.Annotations[lastChangeTriggerTime]
	if !ok {
		return func() {}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Before(s.started) || (!prev.IsZero() && t.After(prev)) {
		return func() {}
	}
	s.at = t
	return func() { s.at = prev }
}

// markDirty marks key changed at s.at, keeping the earliest known time.
func (s *Store) markDirty(key model.ServiceKey) {
	old, ok := s.dirty[key]
	if !ok || old.IsZero() || (!s.at.IsZero() && s.at.Before(old)) {
		s.dirty[key] = s.at
	}
}
