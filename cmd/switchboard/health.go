package main

import (
	"context"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchboard-xds/switchboard/xds"
)

// adsService is the ADS service name, as grpc.health.v1 clients ask for it.
const adsService = "envoy.service.discovery.v3.AggregatedDiscoveryService"

// newHealth returns the grpc.health.v1 service of the xDS port: the server
// ("") and the ADS service are NOT_SERVING until the cache is ready (the
// first full world), then SERVING; Shutdown at the start of the drain
// turns them NOT_SERVING again.
func newHealth() *health.Server {
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(adsService, healthpb.HealthCheckResponse_NOT_SERVING)
	return hs
}

// serveHealth turns hs SERVING once cache is ready, and returns when ctx
// ends (serve takes any return as the end of the process).
func serveHealth(ctx context.Context, hs *health.Server, cache *xds.Cache) error {
	select {
	case <-ctx.Done():
		return nil
	case <-cache.ReadyC():
		hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		hs.SetServingStatus(adsService, healthpb.HealthCheckResponse_SERVING)
	}
	<-ctx.Done()
	return nil
}
