package loadtest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/pipeline"
	"github.com/switchboard-xds/switchboard/xds"
)

// switchboardPeer is the server under test: Switchboard's own cache and
// ADS server, fed by pipeline.Syncer as switchboard serve feeds them (with
// the sidecar stage when --envoy-sidecars would be on).
type switchboardPeer struct {
	cache  *xds.Cache
	srv    *xds.Server
	syncer *pipeline.Syncer
}

func newSwitchboardPeer(sidecars bool, log *slog.Logger) *switchboardPeer {
	c := pipeline.NewCache(nil)
	return &switchboardPeer{
		cache:  c,
		srv:    xds.NewServer(c, xds.ServerOptions{Logger: log}),
		syncer: pipeline.NewSyncer(c, syncerOptions(log, sidecars)),
	}
}

func (p *switchboardPeer) register(gs *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, p.srv)
}

func (p *switchboardPeer) apply(_ context.Context, b model.Batch) error {
	p.syncer.Sink(b)
	if d := p.syncer.Diagnostics(); len(d) > 0 {
		return fmt.Errorf("diagnostics: %v", d)
	}
	return nil
}

// fedPeer feeds a peer that takes resources what switchboard serve's
// pipeline makes of a batch: it is the pipeline.Store of a Syncer, as the
// xds.Cache is in switchboard serve, so the same entry (Syncer.Sink)
// translates for every server. It cannot serve per-client variants, so it
// gets the plain resources (no namespace, zone or class variants), and,
// with sidecars, only the sidecar listeners: an Envoy client's wildcard
// LDS takes every listener it is served, and the api_listener listeners of
// the Services are for gRPC clients, which never ask the peers for
// listeners here.
type fedPeer struct {
	resourcePeer
	syncer   *pipeline.Syncer
	sidecars bool
	// ctx and err are those of the apply under way (one at a time).
	ctx   context.Context
	err   error
	ready bool
}

func newFedPeer(rp resourcePeer, sidecars bool, log *slog.Logger) *fedPeer {
	p := &fedPeer{resourcePeer: rp, sidecars: sidecars}
	p.syncer = pipeline.NewSyncer(p, syncerOptions(log, sidecars))
	return p
}

func (p *fedPeer) apply(ctx context.Context, b model.Batch) error {
	p.ctx, p.err = ctx, nil
	p.syncer.Sink(b)
	if d := p.syncer.Diagnostics(); len(d) > 0 {
		return fmt.Errorf("diagnostics: %v", d)
	}
	return p.err
}

// Apply is pipeline.Store's: the Syncer's Update, stored in the peer.
func (p *fedPeer) Apply(u xds.Update) (int, error) {
	if p.sidecars {
		for key, r := range u.Services {
			if r != nil && !r.EnvoyOnly {
				only := *r
				only.Listeners = nil
				u.Services[key] = &only
			}
		}
	}
	if err := p.applyResources(p.ctx, u.Full, u.Services); err != nil {
		p.err = err
		return 0, err
	}
	p.ready = p.ready || u.Full
	return len(u.Services), nil
}

// Ready is pipeline.Store's.
func (p *fedPeer) Ready() bool { return p.ready }

// gcpTypes are the types that the go-control-plane peers serve, in the
// order of model.Resources.
var gcpTypes = [...]string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType}

// encodedByType splits translated resources by type URL and name.
func encodedByType(svcs map[string]*model.Resources) map[string]map[string]model.Encoded {
	out := make(map[string]map[string]model.Encoded, len(gcpTypes))
	for _, t := range gcpTypes {
		out[t] = map[string]model.Encoded{}
	}
	for _, r := range svcs {
		if r == nil {
			continue
		}
		for i, list := range [...][]model.Encoded{r.Listeners, r.Routes, r.Clusters, r.Assignments} {
			for _, e := range list {
				out[gcpTypes[i]][e.Name] = e
			}
		}
	}
	return out
}

// byType splits translated resources by type URL and name, decoded into
// messages: go-control-plane's caches take messages and marshal them
// themselves.
func byType(svcs map[string]*model.Resources) (map[string]map[string]types.Resource, error) {
	out := make(map[string]map[string]types.Resource, len(gcpTypes))
	for t, es := range encodedByType(svcs) {
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(t)
		if err != nil {
			return nil, fmt.Errorf("type %s: %w", t, err)
		}
		out[t] = make(map[string]types.Resource, len(es))
		for name, e := range es {
			m := mt.New().Interface()
			if err := proto.Unmarshal(e.Wire, m); err != nil {
				return nil, fmt.Errorf("decode %s %q: %w", t, name, err)
			}
			out[t][name] = m
		}
	}
	return out, nil
}

// changedOnly drops from next what equals current: an integrator of
// go-control-plane updates only the resources whose content changed (an
// update of an equal resource still notifies every watcher of it).
// Removal of names is not needed by the harness (no Service is deleted).
func changedOnly(current, next map[string]types.Resource) map[string]types.Resource {
	out := map[string]types.Resource{}
	for name, m := range next {
		if cur, ok := current[name]; ok && proto.Equal(cur, m) {
			continue
		}
		out[name] = m
	}
	return out
}

// linearPeer is go-control-plane's LinearCache, one per type, joined by a
// MuxCache: the setup its documentation suggests for large, per-resource
// updates (Contour serves EDS this way).
type linearPeer struct {
	caches  map[string]*cachev3.LinearCache
	current map[string]map[string]types.Resource
	srv     serverv3.Server
}

func newLinearPeer(ctx context.Context, log *slog.Logger) *linearPeer {
	p := &linearPeer{caches: map[string]*cachev3.LinearCache{}, current: map[string]map[string]types.Resource{}}
	mux := &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return r.GetTypeUrl() },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return r.GetTypeUrl() },
		Caches:        map[string]cachev3.Cache{},
	}
	for _, t := range gcpTypes {
		c := cachev3.NewLinearCache(t, cachev3.WithLogger(gcpLogger{log}))
		p.caches[t] = c
		p.current[t] = map[string]types.Resource{}
		mux.Caches[t] = c
	}
	p.srv = serverv3.NewServer(ctx, mux, nil)
	return p
}

func (p *linearPeer) register(gs *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, p.srv)
}

func (p *linearPeer) applyResources(_ context.Context, full bool, svcs map[string]*model.Resources) error {
	all, err := byType(svcs)
	if err != nil {
		return err
	}
	for t, next := range all {
		if full {
			p.caches[t].SetResources(next)
			p.current[t] = next
			continue
		}
		upd := changedOnly(p.current[t], next)
		if len(upd) == 0 {
			continue
		}
		if err := p.caches[t].UpdateResources(upd, nil); err != nil {
			return fmt.Errorf("linear cache %s: %w", t, err)
		}
		maps.Copy(p.current[t], upd)
	}
	return nil
}

// snapshotPeer is go-control-plane's SnapshotCache with one snapshot that
// every client shares (a NodeHash that maps every node to one key), the
// cheapest way to use it for identical clients.
//
// It runs in non-ADS mode: in ADS mode the SnapshotCache answers a SotW
// request only when it names every resource of the type in the snapshot,
// which a gRPC client subscribing to some Services never does. Each type has
// its own version, bumped only when a resource of that type changes, so an
// endpoint change sends EDS only — but every subscribed assignment of every
// client, as SotW responses from a SnapshotCache always do.
type snapshotPeer struct {
	cache    cachev3.SnapshotCache
	current  map[string]map[string]types.Resource
	versions map[string]int
	srv      serverv3.Server
}

// oneNode hashes every node to the same snapshot.
type oneNode struct{}

func (oneNode) ID(*corev3.Node) string { return "load" }

func newSnapshotPeer(ctx context.Context, log *slog.Logger) *snapshotPeer {
	c := cachev3.NewSnapshotCache(false, oneNode{}, gcpLogger{log})
	p := &snapshotPeer{cache: c, current: map[string]map[string]types.Resource{}, versions: map[string]int{}}
	for _, t := range gcpTypes {
		p.current[t] = map[string]types.Resource{}
	}
	p.srv = serverv3.NewServer(ctx, c, nil)
	return p
}

func (p *snapshotPeer) register(gs *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, p.srv)
}

func (p *snapshotPeer) applyResources(ctx context.Context, full bool, svcs map[string]*model.Resources) error {
	changed := false
	all, err := byType(svcs)
	if err != nil {
		return err
	}
	for t, next := range all {
		upd := next
		if !full {
			upd = changedOnly(p.current[t], next)
		}
		if len(upd) == 0 {
			continue
		}
		maps.Copy(p.current[t], upd)
		p.versions[t]++
		changed = true
	}
	if !changed {
		return nil
	}
	snap := &cachev3.Snapshot{}
	for _, t := range gcpTypes {
		items := slices.Collect(maps.Values(p.current[t]))
		snap.Resources[cachev3.GetResponseType(t)] = cachev3.NewResources(strconv.Itoa(p.versions[t]), items)
	}
	if err := p.cache.SetSnapshot(ctx, "load", snap); err != nil {
		return fmt.Errorf("set snapshot: %w", err)
	}
	return nil
}

// gcpLogger adapts slog to go-control-plane's logger; its Info lines (one
// per watch, in the LinearCache) are debug detail here. Messages are
// formatted only when their level is enabled, so a quiet logger costs the
// peer no CPU.
type gcpLogger struct{ log *slog.Logger }

func (l gcpLogger) logf(level slog.Level, format string, args []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l gcpLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args) }
func (l gcpLogger) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args) }
func (l gcpLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelWarn, format, args) }
func (l gcpLogger) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args) }

// syncerOptions are the Syncer options of every peer: with sidecars, the
// sidecar stage and its DNS listener as switchboard serve has them by
// default (--envoy-sidecars, --envoy-dns-address 127.0.0.1:15053).
func syncerOptions(log *slog.Logger, sidecars bool) pipeline.Options {
	o := pipeline.Options{Logger: log, Sidecars: sidecars}
	if sidecars {
		o.Translator.SidecarDNS = "127.0.0.1:15053"
	}
	return o
}
