package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// SidecarGroupPrefix starts the cache group key of every part of the
// sidecar stage ("~sidecar/tcp/80"); no Service key can start with it.
const SidecarGroupPrefix = "~sidecar/"

// Sidecars is the cross-Service stage of the pipeline: it keeps what of
// every Service the Envoy sidecar resources read (translator.SidecarFacts)
// and an index from each translator.SidecarPart to the Services on it, and
// for every batch rebuilds only the parts whose Services changed in a way
// those resources see. An endpoint change of a Service with a ClusterIP
// (most changes) rebuilds nothing here: Envoy gets only the new
// assignment. A new Service rebuilds the parts of its ports and the DNS
// table, not every listener.
//
// Sidecars is not safe for concurrent use; the Syncer calls it from the
// watcher's one goroutine.
type Sidecars struct {
	opts  translator.Options
	facts map[model.ServiceKey]*model.Service
	parts map[translator.SidecarPart]map[model.ServiceKey]struct{}
	// stored holds the parts that have a group in the cache.
	stored map[translator.SidecarPart]bool
}

// NewSidecars returns an empty stage that translates with opts.
func NewSidecars(opts translator.Options) *Sidecars {
	return &Sidecars{
		opts:   opts,
		facts:  map[model.ServiceKey]*model.Service{},
		parts:  map[translator.SidecarPart]map[model.ServiceKey]struct{}{},
		stored: map[translator.SidecarPart]bool{},
	}
}

// Apply folds b into the stage and returns the cache groups that changed,
// by group key (SidecarGroupPrefix + part): the part's resources, or nil
// for a part that no Service contributes to any more; and, per group,
// the earliest change time of the batch's Services on it (see
// model.Batch.Changed). A part that fails to build keeps its previous
// group, and its error is returned joined with the others.
func (s *Sidecars) Apply(b model.Batch) (map[string]*model.Resources, map[string]time.Time, error) {
	dirty := map[translator.SidecarPart]time.Time{}
	touch := func(p translator.SidecarPart, at time.Time) {
		if old, ok := dirty[p]; !ok || (!at.IsZero() && (old.IsZero() || at.Before(old))) {
			dirty[p] = at
		}
	}
	if b.Full {
		for p := range s.stored {
			touch(p, time.Time{})
		}
		s.facts = map[model.ServiceKey]*model.Service{}
		s.parts = map[translator.SidecarPart]map[model.ServiceKey]struct{}{}
		touch(translator.SidecarPart{Kind: translator.SidecarShared}, time.Time{})
	}
	for key, svc := range b.Services {
		old, f := s.facts[key], translator.SidecarFacts(svc)
		if !b.Full && model.Equal(old, f) {
			continue
		}
		at := b.Changed[key]
		for _, p := range translator.SidecarParts(old) {
			touch(p, at)
			delete(s.parts[p], key)
		}
		if f == nil {
			delete(s.facts, key)
			continue
		}
		s.facts[key] = f
		for _, p := range translator.SidecarParts(f) {
			touch(p, at)
			if s.parts[p] == nil {
				s.parts[p] = map[model.ServiceKey]struct{}{}
			}
			s.parts[p][key] = struct{}{}
		}
	}
	list := make([]translator.SidecarPart, 0, len(dirty))
	for p := range dirty {
		list = append(list, p)
	}
	res := make([]*model.Resources, len(list))
	errs := make([]error, len(list))
	forEach(len(list), func(i int) {
		p := list[i]
		keys := s.parts[p]
		if p.Kind != translator.SidecarShared && len(keys) == 0 {
			return // gone
		}
		svcs := make([]*model.Service, 0, len(keys))
		for k := range keys {
			svcs = append(svcs, s.facts[k])
		}
		r, err := translator.Sidecar(s.opts, p, svcs)
		if err != nil {
			errs[i] = err
			return
		}
		res[i] = &r
	})
	out := make(map[string]*model.Resources, len(list))
	changed := map[string]time.Time{}
	for i, p := range list {
		if errs[i] != nil {
			continue
		}
		key := SidecarGroupPrefix + p.String()
		if res[i] == nil {
			delete(s.parts, p)
			if !s.stored[p] {
				continue
			}
			delete(s.stored, p)
		} else {
			s.stored[p] = true
		}
		out[key] = res[i]
		if at := dirty[p]; !at.IsZero() {
			changed[key] = at
		}
	}
	if err := errors.Join(errs...); err != nil {
		return out, changed, fmt.Errorf("sidecar resources: %w", err)
	}
	return out, changed, nil
}
