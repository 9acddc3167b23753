// Package xds serves translated resources to xDS clients over ADS.
//
// The Cache holds one marshalled copy of every resource version and knows
// which streams watch which names; the Server runs one goroutine per ADS
// stream that keeps the client's protocol state (subscriptions, what it was
// sent, what it accepted or rejected). Protos and type URLs come from
// go-control-plane; the cache and stream layer are Switchboard's own because
// go-control-plane's caches fall short for proxyless gRPC (see Cache).
package xds

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var errDraining = status.Error(codes.Unavailable, "switchboard is shutting down; reconnect to another replica")

// ServerOptions configure a Server.
type ServerOptions struct {
	// Logger receives stream events; nil discards them.
	Logger *slog.Logger
	// Metrics records stream metrics; nil records nothing.
	Metrics *Metrics
	// Authorize, when set, is called once per stream, with the stream's
	// context, when the stream first learns the client's node; an error
	// ends the stream with that error (a status error, e.g.
	// codes.PermissionDenied, reaches the client as is). Nil serves every
	// client.
	Authorize func(ctx context.Context, node *corev3.Node) error
	// Limits bound what one client may cost (see Limits); zero fields take
	// their defaults.
	Limits Limits
	// Now is the clock of the rate limits; nil is time.Now.
	Now func() time.Time
}

// Server implements the Aggregated Discovery Service, state of the world and
// delta, on a Cache.
// Register it on a grpc.Server with discoveryv3.RegisterAggregatedDiscoveryServiceServer.
type Server struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer

	cache     *Cache
	log       *slog.Logger
	metrics   *Metrics
	authorize func(context.Context, *corev3.Node) error
	limits    Limits
	now       func() time.Time
	refusals  *rate.Limiter // limits.go

	nextID    atomic.Int64
	mu        sync.Mutex
	streams   map[int64]*stream
	draining  chan struct{}
	drainOnce sync.Once
}

// NewServer returns a Server that serves what cache holds.
func NewServer(cache *Cache, opts ServerOptions) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	limits := opts.Limits.withDefaults()
	s := &Server{
		limits:    limits,
		now:       now,
		refusals:  newRefusalLog(limits),
		cache:     cache,
		log:       log,
		metrics:   opts.Metrics,
		authorize: opts.Authorize,
		streams:   map[int64]*stream{},
		draining:  make(chan struct{}),
	}
	if opts.Metrics != nil {
		opts.Metrics.server.Store(s)
	}
	return s
}

// StreamAggregatedResources serves one state-of-the-world ADS stream: what
// gRPC clients speak.
func (s *Server) StreamAggregatedResources(ss discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	st := newStream(s.nextID.Add(1), s)
	st.send = ss.Send
	return run(s, st, ss.Context(), ss.Recv, st.handleSotW)
}

// DeltaAggregatedResources serves one incremental (delta) ADS stream: what
// Envoy speaks when configured for DELTA_GRPC.
func (s *Server) DeltaAggregatedResources(ss discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	st := newStream(s.nextID.Add(1), s)
	st.sendDelta = ss.Send
	st.status.Protocol = "delta"
	return run(s, st, ss.Context(), ss.Recv, st.handleDelta)
}

// run serves st until its client goes away: a goroutine receives requests
// and hands them to the stream's goroutine, which also hears of changes.
func run[R any](s *Server, st *stream, ctx context.Context, recv func() (R, error), handle func(R) error) error {
	select {
	case <-s.draining:
		return errDraining
	default:
	}
	st.ctx = ctx
	s.mu.Lock()
	s.streams[st.id] = st
	s.mu.Unlock()
	s.metrics.streamStarted(st)
	defer func() {
		s.mu.Lock()
		delete(s.streams, st.id)
		s.mu.Unlock()
		s.metrics.streamEnded(st)
	}()

	reqs := make(chan R)
	var recvErr error
	go func() {
		defer close(reqs)
		for {
			req, err := recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					recvErr = err
				}
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	// recvErr is read only after reqs is closed, which happens after the
	// write: the channel close orders them.
	err := serve(ctx, st, reqs, handle, func() error { return recvErr })
	if err != nil && !errors.Is(err, errDraining) && status.Code(err) != codes.Canceled {
		st.logger().Debug("stream ended", "error", err)
	}
	return err
}

// Drain ends every stream with UNAVAILABLE, so that clients reconnect to
// another replica at once, and refuses new streams. It is the first step of
// a graceful shutdown; grpc.Server.GracefulStop is the second.
func (s *Server) Drain() {
	s.drainOnce.Do(func() { close(s.draining) })
}

// Clients returns the status of every connected client, ordered by stream.
func (s *Server) Clients() []ClientStatus {
	streams := s.sortedStreams()
	out := make([]ClientStatus, len(streams))
	for i, st := range streams {
		out[i] = st.snapshot()
	}
	return out
}

// sortedStreams returns the open streams, ordered by id.
func (s *Server) sortedStreams() []*stream {
	s.mu.Lock()
	streams := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	sort.Slice(streams, func(i, j int) bool { return streams[i].id < streams[j].id })
	return streams
}
