package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// SidecarGroupPrefix starts the cache group key of every part of the
// sidecar stage ("~sidecar/tcp/10.96.0.10:80"); no Service key can start
// with it.
const SidecarGroupPrefix = "~sidecar/"

// dnsGroup is the cache group of the DNS table.
var dnsGroup = SidecarGroupPrefix + translator.SidecarPart{Kind: translator.SidecarDNS}.String()

// Sidecars is the cross-Service stage of the pipeline: it keeps what of
// every Service the Envoy sidecar resources read (translator.SidecarFacts),
// an index from each translator.SidecarPart (a ClusterIP and port) to the
// Services on it, and each Service's marshalled DNS records; for every
// batch it rebuilds only the parts whose Services changed in a way those
// resources see. An endpoint change (most changes, headless Services'
// included) rebuilds nothing here: Envoy gets only the new assignment. A
// new Service rebuilds its own listeners and the DNS table, which is the
// records it holds laid end to end; the Syncer may hold the table back to
// coalesce changes (Apply's holdDNS, FlushDNS).
//
// Sidecars is not safe for concurrent use; the Syncer serialises its calls.
type Sidecars struct {
	opts  translator.Options
	facts map[model.ServiceKey]*model.Service
	parts map[translator.SidecarPart]map[model.ServiceKey]struct{}
	// stored holds the parts that have a group in the cache.
	stored map[translator.SidecarPart]bool
	// dns holds the DNS records of every Service that has some, in table
	// order (translator.CompareDNSRecords).
	dns []translator.DNSRecords
	// dnsDirty is set while the table has changes not yet built, the
	// earliest of which happened at dnsAt (zero: unknown).
	dnsDirty bool
	dnsAt    time.Time
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
// model.Batch.Changed). With holdDNS, a change of the DNS table is kept
// pending (DNSPending) instead of built; a full batch always builds it. A
// part that fails to build keeps its previous group, and its error is
// returned joined with the others.
func (s *Sidecars) Apply(b model.Batch, holdDNS bool) (map[string]*model.Resources, map[string]time.Time, error) {
	dirty := map[translator.SidecarPart]time.Time{}
	touch := func(p translator.SidecarPart, at time.Time) {
		if old, ok := dirty[p]; !ok || earlier(at, old) {
			dirty[p] = at
		}
	}
	var errs []error
	if b.Full {
		for p := range s.stored {
			touch(p, time.Time{})
		}
		s.facts = map[model.ServiceKey]*model.Service{}
		s.parts = map[translator.SidecarPart]map[model.ServiceKey]struct{}{}
		s.dns = nil
		s.markDNS(time.Time{})
		touch(translator.SidecarPart{Kind: translator.SidecarShared}, time.Time{})
	}
	for key, svc := range b.Services {
		old, f := s.facts[key], translator.SidecarFacts(svc)
		if !b.Full && model.Equal(old, f) {
			continue
		}
		at := b.Changed[key]
		for _, p := range translator.SidecarParts(old) {
			if p.Kind == translator.SidecarDNS {
				continue
			}
			touch(p, at)
			delete(s.parts[p], key)
		}
		if changed, err := s.updateDNS(key, f, b.Full); err != nil {
			errs = append(errs, err)
		} else if changed {
			s.markDNS(at)
		}
		if f == nil {
			delete(s.facts, key)
			continue
		}
		s.facts[key] = f
		for _, p := range translator.SidecarParts(f) {
			if p.Kind == translator.SidecarDNS {
				continue
			}
			touch(p, at)
			if s.parts[p] == nil {
				s.parts[p] = map[model.ServiceKey]struct{}{}
			}
			s.parts[p][key] = struct{}{}
		}
	}
	if b.Full {
		slices.SortFunc(s.dns, translator.CompareDNSRecords)
	}
	out, changed, err := s.build(dirty)
	errs = append(errs, err)
	if s.dnsDirty && (b.Full || !holdDNS) {
		dns, at, err := s.buildDNS()
		errs = append(errs, err)
		if dns != nil {
			out[dnsGroup] = dns
			if !at.IsZero() {
				changed[dnsGroup] = at
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return out, changed, fmt.Errorf("sidecar resources: %w", err)
	}
	return out, changed, nil
}

// DNSPending reports whether the DNS table has changes that Apply held.
func (s *Sidecars) DNSPending() bool { return s.dnsDirty }

// FlushDNS builds the DNS table if it has pending changes, and returns its
// group as Apply would (nothing when none is pending).
func (s *Sidecars) FlushDNS() (map[string]*model.Resources, map[string]time.Time, error) {
	out, changed := map[string]*model.Resources{}, map[string]time.Time{}
	if !s.dnsDirty {
		return out, changed, nil
	}
	dns, at, err := s.buildDNS()
	if dns != nil {
		out[dnsGroup] = dns
		if !at.IsZero() {
			changed[dnsGroup] = at
		}
	}
	if err != nil {
		return out, changed, fmt.Errorf("sidecar resources: %w", err)
	}
	return out, changed, nil
}

func earlier(at, than time.Time) bool {
	return !at.IsZero() && (than.IsZero() || at.Before(than))
}

// markDNS records a possible change of the table at at.
func (s *Sidecars) markDNS(at time.Time) {
	if !s.dnsDirty || earlier(at, s.dnsAt) {
		s.dnsAt = at
	}
	s.dnsDirty = true
}

// updateDNS replaces the records of key by those of f (nil: none) and
// reports whether they changed. On error the old records stay. With bulk
// (a full batch, which starts from none) it appends, and Apply sorts once.
func (s *Sidecars) updateDNS(key model.ServiceKey, f *model.Service, bulk bool) (bool, error) {
	r, err := translator.NewDNSRecords(s.opts, f)
	if err != nil {
		return false, err
	}
	r.Key = key
	if bulk {
		if r.Wire != nil {
			s.dns = append(s.dns, r)
		}
		return true, nil
	}
	i, had := slices.BinarySearchFunc(s.dns, r, translator.CompareDNSRecords)
	switch {
	case r.Wire == nil && !had:
		return false, nil
	case r.Wire == nil:
		s.dns = slices.Delete(s.dns, i, i+1)
	case had && bytes.Equal(s.dns[i].Wire, r.Wire):
		return false, nil
	case had:
		s.dns[i] = r
	default:
		s.dns = slices.Insert(s.dns, i, r)
	}
	return true, nil
}

// buildDNS builds the DNS listener from every Service's records and clears
// the pending change; on error its previous group keeps serving until the
// next change of the table (the translator fails only on options that
// were validated before, so a retry would fail the same way).
func (s *Sidecars) buildDNS() (*model.Resources, time.Time, error) {
	at := s.dnsAt
	s.dnsDirty, s.dnsAt = false, time.Time{}
	r, err := translator.DNSListener(s.opts, s.dns)
	if err != nil {
		return nil, time.Time{}, err
	}
	r.EnvoyOnly = true
	return &r, at, nil
}

// build rebuilds the dirty parts other than the DNS table. The listeners
// of a ClusterIP and port come from the part's winner, the least Service
// key on it (translator.SidecarWinner's rule), and each winner's
// listeners are built once, however many of its parts are dirty.
func (s *Sidecars) build(dirty map[translator.SidecarPart]time.Time) (map[string]*model.Resources, map[string]time.Time, error) {
	byWinner := map[model.ServiceKey][]translator.SidecarPart{}
	res := map[translator.SidecarPart]*model.Resources{}
	var errs []error
	for p := range dirty {
		if p.Kind == translator.SidecarShared {
			r, err := translator.Sidecar(s.opts, p, nil)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			res[p] = &r
			continue
		}
		var w model.ServiceKey
		for k := range s.parts[p] {
			if w == (model.ServiceKey{}) || k.Compare(w) < 0 {
				w = k
			}
		}
		if w == (model.ServiceKey{}) {
			res[p] = nil // gone
			continue
		}
		byWinner[w] = append(byWinner[w], p)
	}
	winners := make([]model.ServiceKey, 0, len(byWinner))
	for w := range byWinner {
		winners = append(winners, w)
	}
	built := make([]map[translator.SidecarPart]model.Resources, len(winners))
	werrs := make([]error, len(winners))
	forEach(len(winners), func(i int) {
		built[i], werrs[i] = translator.SidecarListeners(s.opts, s.facts[winners[i]])
	})
	failed := map[translator.SidecarPart]bool{}
	for i, w := range winners {
		for _, p := range byWinner[w] {
			if werrs[i] != nil {
				failed[p] = true
				continue
			}
			if r, ok := built[i][p]; ok {
				res[p] = &r
			} else {
				res[p] = nil
			}
		}
		errs = append(errs, werrs[i])
	}
	out := make(map[string]*model.Resources, len(dirty)+1)
	changed := map[string]time.Time{}
	for p, at := range dirty {
		if failed[p] {
			continue
		}
		r, ok := res[p]
		if !ok {
			continue // the shared part failed
		}
		key := SidecarGroupPrefix + p.String()
		if r == nil {
			delete(s.parts, p)
			if !s.stored[p] {
				continue
			}
			delete(s.stored, p)
		} else {
			s.stored[p] = true
		}
		out[key] = r
		if !at.IsZero() {
			changed[key] = at
		}
	}
	return out, changed, errors.Join(errs...)
}
