package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/pipeline"
	"github.com/switchboard-xds/switchboard/watcher"
	"github.com/switchboard-xds/switchboard/xds"
)

// serve builds the parts, runs them until ctx ends or one fails, and shuts
// down in order: stop taking changes, drain the xDS streams, stop the
// servers.
func serve(ctx context.Context, o serveOptions, stderr io.Writer) error {
	log := o.logger(stderr)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	xdsMetrics := xds.NewMetrics(reg)
	registerBuildInfo(reg)
	grpcMetrics := grpcMetrics(reg)

	wopts := watcher.Options{
		Namespaces:       o.Namespaces,
		Selector:         o.Selector,
		MinDelay:         o.MinDelay,
		MaxDelay:         o.MaxDelay,
		SyncTimeout:      o.SyncTimeout,
		NodeRegions:      o.NodeRegions,
		SettleTime:       o.ManifestSettle,
		MaxManifestBytes: o.ManifestMaxBytes,
		Logger:           log.With("component", "watcher"),
		Metrics:          watcher.NewMetrics(reg),
	}
	src, status, err := newSource(ctx, o, wopts)
	if err != nil {
		return err
	}
	var routeStatus func(map[model.RouteKey]*model.RouteStatus)
	if status != nil {
		routeStatus = status.Update
	}

	// The cache records the coalesce and translate stages of convergence
	// that each Update carries; the server, the push stage.
	cache := pipeline.NewCache(xdsMetrics)
	syncer := pipeline.NewSyncer(cache, pipeline.Options{
		Translator:  o.translatorOptions(),
		Sidecars:    o.EnvoySidecars,
		Logger:      log.With("component", "translator"),
		Metrics:     pipeline.NewMetrics(reg),
		RouteStatus: routeStatus,
	})
	sec, err := o.XDSTLS.build(log.With("component", "xds-tls"), reg)
	if err != nil {
		return err
	}
	ads := xds.NewServer(cache, xds.ServerOptions{Logger: log.With("component", "xds"), Metrics: xdsMetrics, Authorize: sec.authorize, Limits: o.Limits})

	xdsLis, err := net.Listen("tcp", o.XDSAddress)
	if err != nil {
		return fmt.Errorf("--xds-address: %w", err)
	}
	adminLis, err := net.Listen("tcp", o.AdminAddress)
	if err != nil {
		_ = xdsLis.Close()
		return fmt.Errorf("--admin-address: %w", err)
	}
	debug, err := listenDebug(o.DebugAddress, ads, syncer)
	if err != nil {
		_, _ = xdsLis.Close(), adminLis.Close()
		return err
	}
	// --xds-max-connections.
	xdsLis = ads.LimitListener(xdsLis)
	serverOpts := append(slices.Clone(sec.serverOptions), grpcMetricsOptions(grpcMetrics)...)
	// SotW ACKs are checked against the subscription without turning every
	// name into a string; and --xds-max-streams-per-connection,
	// --xds-max-request-bytes.
	serverOpts = append(serverOpts, ads.GRPCServerOptions()...)
	grpcServer := grpc.NewServer(append(serverOpts,
		// Clients may ping idle streams; do not answer those pings with GOAWAY.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// MaxConnectionAge sends GOAWAY (grpc-go jitters it by +/-10%, so a
		// rollout's clients do not all reconnect at once); the streams end
		// MaxConnectionAgeGrace later and the client resubscribes,
		// possibly on another replica. Versions are content-derived, so it
		// gets the same versions there. Zero in grpc-go means infinity.
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:                  30 * time.Second,
			Timeout:               10 * time.Second,
			MaxConnectionAge:      o.MaxConnectionAge,
			MaxConnectionAgeGrace: o.MaxConnectionAgeGrace,
		}),
	)...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(grpcServer, ads)
	if o.CSDS {
		statusv3.RegisterClientStatusDiscoveryServiceServer(grpcServer, xds.NewCSDS(ads, xds.CSDSOptions{AskerNamespace: sec.askerNamespace}))
	}
	hs := newHealth()
	healthpb.RegisterHealthServer(grpcServer, hs)
	// Every method's series exist from the start, at 0.
	grpcMetrics.InitializeMetrics(grpcServer)
	admin := &http.Server{
		Handler:           adminHandler(reg, cache),
		ReadHeaderTimeout: 5 * time.Second,
	}
	log.Info("switchboard serving", "version", version, "xds", xdsLis.Addr().String(), "admin", adminLis.Addr().String(), "debug", debug.addr(), "tls", o.XDSTLS.Cert != "", "mtls", sec.authorize != nil, "source", o.source())

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 8)
	go func() { errc <- wrap("watcher", src.Run(runCtx, syncer.Sink)) }()
	go func() { errc <- wrap("xds server", grpcServer.Serve(xdsLis)) }()
	go func() { errc <- wrap("admin server", ignoreClosed(admin.Serve(adminLis))) }()
	go func() { errc <- waitReady(runCtx, cache, o.SyncTimeout+readyGrace, log) }()
	go func() { errc <- serveHealth(runCtx, hs, cache) }()
	if sec.run != nil {
		go func() { errc <- wrap("xds tls", sec.run(runCtx)) }()
	}
	if status != nil {
		go func() { errc <- wrap("route status", status.Run(runCtx)) }()
	}
	if debug.srv != nil {
		go func() { errc <- wrap("debug server", ignoreClosed(debug.srv.Serve(debug.lis))) }()
	}

	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	hs.Shutdown() // NOT_SERVING from the start of the drain
	shutdown(grpcServer, ads, []*http.Server{admin, debug.srv}, o.DrainTimeout, log)
	return first
}

// readyGrace is how much longer than --sync-timeout waitReady waits. The
// informer source gives up after --sync-timeout itself, naming the last
// watch error (a forbidden resource, an unreachable server); waitReady is
// the backstop for any other way of not becoming ready, and must not beat
// the source's more telling error.
const readyGrace = 5 * time.Second

// waitReady fails when the cache has not had its first full translation
// within timeout: better a clear error and a restart than a replica that
// never becomes ready.
func waitReady(ctx context.Context, cache *xds.Cache, timeout time.Duration, log *slog.Logger) error {
	start := time.Now()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-cache.ReadyC():
		log.Info("first full translation in the cache; serving", "after", time.Since(start).Round(time.Millisecond))
		<-ctx.Done()
		return nil
	case <-t.C:
		return fmt.Errorf("no full translation in the cache within --sync-timeout + %v (%v)", readyGrace, timeout)
	}
}

func shutdown(grpcServer *grpc.Server, ads *xds.Server, https []*http.Server, timeout time.Duration, log *slog.Logger) {
	log.Info("shutting down: draining xDS streams")
	ads.Drain()
	done := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		log.Warn("streams did not end in time; closing them", "drain_timeout", timeout)
		grpcServer.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, h := range https {
		if h != nil {
			_ = h.Shutdown(ctx)
		}
	}
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
