// Package watcher turns Kubernetes Services and EndpointSlices, read from an
// API server or from manifest files, into the trimmed per-Service view of
// package model and publishes it to a model.Sink in coalesced batches.
//
// The pieces: a Store (store.go) holds the trimmed state and says whether a
// change altered any published view; a single owner goroutine (coalescer.go)
// applies every change to the Store and publishes bursts as one model.Batch; a
// Source
// (informers.go, manifests.go) feeds that goroutine. The watcher publishes
// state; it does not decide what to push or when a client needs it.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/switchboard-xds/switchboard/model"
)

// Default coalescing delays. Kubernetes changes arrive in bursts (a rollout
// touches a slice once per pod, a dual-stack Service has two slices that move
// together); 5 ms of quiet is enough to catch the rest of such a burst, and a
// 50 ms ceiling bounds the extra latency under a continuous stream of changes
// while still letting one batch carry tens of updates. Both are far below
// Istio's 100 ms debounce floor: a removed endpoint should leave clients fast.
const (
	DefaultMinDelay = 5 * time.Millisecond
	DefaultMaxDelay = 50 * time.Millisecond
)

// DefaultPollInterval is how often the manifest source re-lists its folder as
// a safety net behind inotify, which delivers changes in milliseconds: the
// poll only matters if inotify loses events (queue overflow) or cannot see
// them (some network and FUSE file systems).
const DefaultPollInterval = 10 * time.Second

// DefaultSettleTime is how long a manifest file written in place must keep
// its size and mtime before it is read: long enough for a tool writing in
// chunks (cp, a shell redirect, a slow editor) to finish, short enough to
// keep an edit well under a second from the clients.
const DefaultSettleTime = 100 * time.Millisecond

// DefaultMaxManifestBytes is the largest manifest file the manifest source
// reads: far above any hand-written folder (1 MiB holds about 5,000
// Services), small enough that a runaway file cannot take the process down.
const DefaultMaxManifestBytes = 16 << 20

// Source produces the published view from somewhere (an API server, a folder
// of manifests) and hands it to a model.Sink.
type Source interface {
	// Run publishes batches to sink until ctx is done, then returns nil once no
	// call to sink is in flight. Nothing is published before the source has
	// read its whole initial state; the first batch has Full set. Run returns
	// an error only for problems it cannot recover from (such as a folder
	// that cannot be read at start). Run may be called once.
	Run(ctx context.Context, sink model.Sink) error
}

// Options configure a Source. The zero value watches every namespace and every
// Service with the default delays, the real clock, no logging and no metrics.
type Options struct {
	// Namespaces limits the watch to these namespaces; empty means all.
	Namespaces []string
	// Selector is a label selector (labels.Parse syntax) that Services must
	// match to be published; it does not apply to EndpointSlices. Empty
	// selects every Service.
	Selector string
	// MinDelay is how long a burst must be quiet before it is published;
	// zero means DefaultMinDelay.
	MinDelay time.Duration
	// MaxDelay bounds how long after the first unpublished change a batch is
	// published even while changes keep coming; zero means DefaultMaxDelay.
	// It must not be less than MinDelay.
	MaxDelay time.Duration
	// PollInterval is how often the manifest source re-lists its folder as
	// a safety net behind inotify; zero means DefaultPollInterval. The
	// informer source ignores it.
	PollInterval time.Duration
	// SettleTime is how long a manifest file changed in place must keep its
	// size and mtime before it is read (a file renamed into place is read
	// at once); zero means DefaultSettleTime. The informer source ignores it.
	SettleTime time.Duration
	// MaxManifestBytes is the size limit of one manifest file; a larger file
	// is refused and its last good content kept. Zero means
	// DefaultMaxManifestBytes. The informer source ignores it.
	MaxManifestBytes int64
	// SyncTimeout makes the informer source's Run fail, naming the last watch
	// error, when its caches have not synced within this time (an API server
	// that cannot be reached or refuses us). Zero waits until ctx is done.
	// The manifest source ignores it.
	SyncTimeout time.Duration
	// Clock drives the delays and the manifest polling; nil means the real
	// clock. Tests pass k8s.io/utils/clock/testing.FakeClock.
	Clock clock.WithTicker
	// Logger receives the watcher's logs; nil discards them.
	Logger *slog.Logger
	// Metrics records the watcher's metrics; nil records nothing.
	Metrics *Metrics
	// NodeRegions also watches Nodes (the informer source) or reads Node
	// objects (the manifest source) and gives each endpoint the
	// topology.kubernetes.io/region label of its Node. It needs list and
	// watch on nodes (deploy/rbac-node-regions.yaml).
	NodeRegions bool
	// Gateway is the Gateway API client the informer source watches mesh
	// routes with (HTTPRoute, GRPCRoute, ReferenceGrant) while their CRDs
	// are installed; nil watches none. The manifest source reads them from
	// its files whatever this is.
	Gateway gatewayclient.Interface
	// CRDCheckInterval is how often the informer source asks API discovery
	// for Gateway API kinds not installed yet; zero means
	// DefaultCRDCheckInterval.
	CRDCheckInterval time.Duration
}

// DefaultCRDCheckInterval is the default Options.CRDCheckInterval.
const DefaultCRDCheckInterval = 30 * time.Second

// config is Options with defaults applied and the selector parsed.
type config struct {
	filter       filter
	minDelay     time.Duration
	maxDelay     time.Duration
	pollInterval time.Duration
	settleTime   time.Duration
	maxBytes     int64
	syncTimeout  time.Duration
	nodeRegions  bool
	gateway      gatewayclient.Interface
	crdCheck     time.Duration
	clock        clock.WithTicker
	log          *slog.Logger
	metrics      *Metrics
}

func (o Options) config() (config, error) {
	f, err := newFilter(o.Namespaces, o.Selector)
	if err != nil {
		return config{}, err
	}
	c := config{
		filter:       f,
		minDelay:     o.MinDelay,
		maxDelay:     o.MaxDelay,
		pollInterval: o.PollInterval,
		settleTime:   o.SettleTime,
		maxBytes:     o.MaxManifestBytes,
		syncTimeout:  o.SyncTimeout,
		nodeRegions:  o.NodeRegions,
		gateway:      o.Gateway,
		crdCheck:     o.CRDCheckInterval,
		clock:        o.Clock,
		log:          o.Logger,
		metrics:      o.Metrics,
	}
	if c.minDelay == 0 {
		c.minDelay = DefaultMinDelay
	}
	if c.maxDelay == 0 {
		c.maxDelay = max(DefaultMaxDelay, c.minDelay)
	}
	if c.pollInterval == 0 {
		c.pollInterval = DefaultPollInterval
	}
	if c.settleTime == 0 {
		c.settleTime = DefaultSettleTime
	}
	if c.maxBytes == 0 {
		c.maxBytes = DefaultMaxManifestBytes
	}
	if c.crdCheck <= 0 {
		c.crdCheck = DefaultCRDCheckInterval
	}
	var errs []error
	if c.minDelay < 0 || c.maxDelay < 0 || c.pollInterval < 0 || c.settleTime < 0 || c.syncTimeout < 0 {
		errs = append(errs, errors.New("delays, poll interval, settle time and sync timeout must not be negative"))
	}
	if c.maxBytes < 0 {
		errs = append(errs, fmt.Errorf("max manifest bytes %d is negative", c.maxBytes))
	}
	if c.maxDelay < c.minDelay {
		errs = append(errs, fmt.Errorf("max delay %v is less than min delay %v", c.maxDelay, c.minDelay))
	}
	if err := errors.Join(errs...); err != nil {
		return config{}, err
	}
	if c.clock == nil {
		c.clock = clock.RealClock{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// filter decides which Services are published.
type filter struct {
	// namespaces is nil when every namespace is watched.
	namespaces map[string]bool
	selector   labels.Selector
}

func newFilter(namespaces []string, selector string) (filter, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return filter{}, fmt.Errorf("parse selector %q: %w", selector, err)
	}
	f := filter{selector: sel}
	for _, ns := range namespaces {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		if f.namespaces == nil {
			f.namespaces = map[string]bool{}
		}
		f.namespaces[ns] = true
	}
	return f, nil
}

// watches reports whether objects in namespace ns are watched at all.
func (f filter) watches(ns string) bool {
	return f.namespaces == nil || f.namespaces[ns]
}

// selects reports whether a Service with these labels is published.
func (f filter) selects(l map[string]string) bool {
	return f.selector == nil || f.selector.Matches(labels.Set(l))
}

// namespaceList returns the watched namespaces sorted, or nil for all.
func (f filter) namespaceList() []string {
	if f.namespaces == nil {
		return nil
	}
	out := make([]string, 0, len(f.namespaces))
	for ns := range f.namespaces {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}
