// Package pipeline carries the watcher's batches through the translator into
// the xDS cache: the one place where the three stages meet. Data flows one
// way, watcher → translator → xds; nothing here feeds back.
//
// The watcher publishes a model.Batch of changed Services; the Syncer
// translates those (and only those), with the sidecar stage's parts they
// touch, into one xds.Update (encoded, versioned model.Resources, with the
// batch's stage timings), hands it to the Store (xds.Cache in switchboard
// serve, a peer of the load tool), and keeps the current diagnostics for
// the debug endpoint. Translation time, resource changes, diagnostics and
// readiness are measured here, beside the code they measure.
package pipeline

import (
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
	"github.com/switchboard-xds/switchboard/xds"
)

// Options configure a Syncer.
type Options struct {
	Translator translator.Options
	// Logger receives new diagnostics and cache errors; nil discards them.
	Logger *slog.Logger
	// Metrics records translation time and diagnostics; nil records nothing.
	Metrics *Metrics
	// Now is the clock for durations; nil means time.Now.
	Now func() time.Time
	// Sidecars turns on the sidecar stage (see Sidecars): the listeners,
	// route configurations and DNS table that Envoy sidecars route with.
	Sidecars bool
	// DNSInterval is how long a change of the sidecars' DNS table waits
	// (0 means DefaultDNSInterval; negative, no wait): the table is built
	// DNSInterval after the first change since it was last built, with
	// every change of that time, so a burst of new Services sends it to
	// each sidecar once per interval, and after the Services' own
	// listeners, routes and clusters, which are sent at once (a large
	// table never delays them). Until it arrives a new name is answered by
	// the cluster's DNS, to which the DNS listener forwards what its table
	// lacks. A full batch builds it at once.
	DNSInterval time.Duration
	// RouteStatus, when set, receives the mesh routes whose status changed
	// (nil for a deleted route) after each batch, on the Sink's goroutine:
	// it must not block (the status writer keeps the latest and returns).
	RouteStatus func(map[model.RouteKey]*model.RouteStatus)
}

// DefaultDNSInterval is Options.DNSInterval's default.
const DefaultDNSInterval = time.Second

// Store is what a Syncer fills: an xds.Cache, or a load-test peer that
// serves the same Updates its own way. Apply stores one Update and returns
// the number of resources whose version changed; Ready reports whether a
// full Update was stored.
type Store interface {
	Apply(xds.Update) (int, error)
	Ready() bool
}

// Syncer carries watcher batches into a Store: it translates the Services
// that changed (and only those), stores the result and keeps the current
// diagnostics. Its Sink method is a model.Sink; the watcher calls it from
// one goroutine, and Diagnostics may be called from any.
type Syncer struct {
	cache Store
	opts  Options
	log   *slog.Logger

	sidecars *Sidecars // nil when off
	mesh     *meshIndex

	// sinkMu serialises Sink and the flush of a held DNS table, which
	// share sidecars and the fields below.
	sinkMu   sync.Mutex
	dnsTimer *time.Timer // armed while a held DNS table waits

	mu    sync.Mutex
	diags map[model.ServiceKey][]translator.Diagnostic
	// status is every mesh route's current status (under mu).
	status map[model.RouteKey]*model.RouteStatus
}

// NewSyncer returns a Syncer that fills cache.
func NewSyncer(cache Store, opts Options) *Syncer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DNSInterval == 0 {
		opts.DNSInterval = DefaultDNSInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{cache: cache, opts: opts, log: log, diags: map[model.ServiceKey][]translator.Diagnostic{}, mesh: newMeshIndex()}
	if opts.Sidecars {
		opts.Translator.Sidecars = true
		s.opts.Translator.Sidecars = true
		s.sidecars = NewSidecars(opts.Translator)
	}
	return s
}

// Sink translates one batch and applies it to the cache.
func (s *Syncer) Sink(b model.Batch) {
	s.sinkMu.Lock()
	defer s.sinkMu.Unlock()
	start := s.opts.Now()
	services := s.mesh.apply(b)
	u, diags := translate(s.opts.Translator, b, services, s.mesh)
	if s.sidecars != nil {
		hold := s.opts.DNSInterval > 0 && !b.Full
		groups, changed, err := s.sidecars.Apply(b, hold)
		s.addSidecars(&u, groups, changed, err)
	}
	if !b.FirstEvent.IsZero() {
		u.Coalesce = start.Sub(b.FirstEvent)
	}
	u.Translate = max(s.opts.Now().Sub(start), 1)
	n, err := s.cache.Apply(u)
	if err != nil {
		s.log.Error("some Services could not be stored; their previous resources keep serving", "error", err)
	}
	s.recordDiagnostics(b.Full, services, diags)
	s.updateRouteStatus()
	if m := s.opts.Metrics; m != nil {
		m.translate.Observe(s.opts.Now().Sub(start).Seconds())
		m.applied.Add(float64(n))
		if s.cache.Ready() {
			m.cacheReady.Set(1)
		}
	}
}

// addSidecars adds the sidecar stage's groups to u, and arms the flush of
// a DNS table the stage holds.
func (s *Syncer) addSidecars(u *xds.Update, groups map[string]*model.Resources, changed map[string]time.Time, err error) {
	if err != nil {
		s.log.Error("some sidecar resources could not be built; their previous version keeps serving", "error", err)
	}
	if u.Services == nil {
		u.Services = make(map[string]*model.Resources, len(groups))
	}
	for key, r := range groups {
		u.Services[key] = r
	}
	if len(changed) > 0 && u.Changed == nil {
		u.Changed = make(map[string]time.Time, len(changed))
	}
	for key, at := range changed {
		u.Changed[key] = at
	}
	if s.sidecars.DNSPending() && s.dnsTimer == nil {
		s.dnsTimer = time.AfterFunc(s.opts.DNSInterval, s.flushDNS)
	}
}

// flushDNS builds and stores the DNS table the sidecar stage held.
func (s *Syncer) flushDNS() {
	s.sinkMu.Lock()
	defer s.sinkMu.Unlock()
	s.dnsTimer = nil
	start := s.opts.Now()
	groups, changed, err := s.sidecars.FlushDNS()
	var u xds.Update
	s.addSidecars(&u, groups, changed, err)
	if len(u.Services) == 0 {
		return
	}
	u.Translate = max(s.opts.Now().Sub(start), 1)
	n, err := s.cache.Apply(u)
	if err != nil {
		s.log.Error("the sidecars' DNS table could not be stored; its previous version keeps serving", "error", err)
	}
	if m := s.opts.Metrics; m != nil {
		m.applied.Add(float64(n))
	}
}

// translate translates services (b's Services and the ones b's routes,
// grants and backends affect, see meshIndex.apply), each with the mesh
// routes attached to it, into the cache Update that carries them, with the
// diagnostics of each translated Service. A full batch (start-up, resync)
// is translated on every core; the translator is pure, so the result is
// the same as one by one.
func translate(opts translator.Options, b model.Batch, services map[model.ServiceKey]*model.Service, mesh *meshIndex) (xds.Update, map[model.ServiceKey][]translator.Diagnostic) {
	u := xds.Update{Full: b.Full, Services: make(map[string]*model.Resources, len(services))}
	diags := make(map[model.ServiceKey][]translator.Diagnostic, len(services))
	keys := make([]model.ServiceKey, 0, len(services))
	meshes := make([]*translator.Mesh, 0, len(services))
	for key := range services {
		keys = append(keys, key)
		meshes = append(meshes, mesh.mesh(key))
	}
	res := make([]*model.Resources, len(keys))
	ds := make([][]translator.Diagnostic, len(keys))
	forEach(len(keys), func(i int) {
		if svc := services[keys[i]]; svc != nil {
			r, d := translator.ServiceMesh(opts, svc, meshes[i])
			res[i], ds[i] = &r, d
		}
	})
	if len(b.Changed) > 0 {
		u.Changed = make(map[string]time.Time, len(b.Changed))
		for key, at := range b.Changed {
			u.Changed[key.String()] = at
		}
	}
	for i, key := range keys {
		u.Services[key.String()] = res[i]
		if res[i] != nil {
			diags[key] = ds[i]
		}
	}
	return u, diags
}

func (s *Syncer) recordDiagnostics(full bool, services map[model.ServiceKey]*model.Service, diags map[model.ServiceKey][]translator.Diagnostic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if full {
		for key := range s.diags {
			if _, ok := services[key]; !ok {
				delete(s.diags, key)
			}
		}
	}
	for key := range services {
		old, now := s.diags[key], diags[key]
		for _, d := range now {
			if slices.Contains(old, d) {
				continue
			}
			if d.Route != (model.RouteKey{}) {
				s.log.Warn("mesh route not applied as written", "service", key.String(), "port", d.Port,
					"route", d.Route.String(), "feature", d.Feature, "reason", d.Reason)
			} else {
				s.log.Warn("service not fully translated", "service", key.String(), "port", d.Port, "reason", d.Reason)
			}
			if m := s.opts.Metrics; m != nil && d.Feature != "" {
				m.unsupported.WithLabelValues(d.Flavour.String(), d.Feature).Inc()
			}
		}
		if len(now) == 0 {
			delete(s.diags, key)
		} else {
			s.diags[key] = now
		}
	}
	if m := s.opts.Metrics; m != nil {
		total := 0
		for _, d := range s.diags {
			total += len(d)
		}
		m.diagnosed.Set(float64(total))
	}
}

// Diagnostics returns the current diagnostics, sorted by Service and port.
func (s *Syncer) Diagnostics() []translator.Diagnostic {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []translator.Diagnostic
	for _, d := range s.diags {
		out = append(out, d...)
	}
	slices.SortFunc(out, func(a, b translator.Diagnostic) int {
		return strings.Compare(a.String(), b.String())
	})
	return out
}

// NewCache returns the xds.Cache that a Syncer fills, wired to build the
// listeners the server makes per request (alias and unknown listeners)
// with the translator, and to record the stages of each Update in m (nil:
// none). It is the one place where the server meets the translator.
func NewCache(m *xds.Metrics) *xds.Cache {
	return xds.NewCache(xds.CacheOptions{
		AliasListener:   translator.AliasListener,
		UnknownListener: translator.UnknownListener,
		Metrics:         m,
	})
}
