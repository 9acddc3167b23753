package main

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/pipeline"
	"github.com/switchboard-xds/switchboard/xds"
)

// The health service is NOT_SERVING until the first full world is in the
// cache, SERVING then, and NOT_SERVING again once the drain starts
// (Shutdown, as serve calls it).
func TestHealthFollowsReadinessAndDrain(t *testing.T) {
	status := func(hs interface {
		Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error)
	}, service string,
	) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		r, err := hs.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	hs := newHealth()
	cache := pipeline.NewCache(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveHealth(ctx, hs, cache) }()
	for _, svc := range []string{"", adsService} {
		if got := status(hs, svc); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("%q before the first full world: %v", svc, got)
		}
	}
	// Watch "" and wait for SERVING after the first full update.
	watch := make(chan healthpb.HealthCheckResponse_ServingStatus, 4)
	ws := &watchStream{ctx: ctx, out: watch}
	go func() { _ = hs.Watch(&healthpb.HealthCheckRequest{Service: ""}, ws) }()
	if got := <-watch; got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("first watched status %v", got)
	}
	if _, err := cache.Apply(xds.Update{Full: true, Services: map[string]*model.Resources{}}); err != nil {
		t.Fatal(err)
	}
	if got := <-watch; got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("after the first full world: %v", got)
	}
	if got := status(hs, adsService); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("ADS service after the first full world: %v", got)
	}
	hs.Shutdown()
	if got := <-watch; got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after Shutdown: %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// watchStream is the server side of a Health.Watch stream in memory: it
// hands every status sent to out.
type watchStream struct {
	grpc.ServerStream
	ctx context.Context
	out chan<- healthpb.HealthCheckResponse_ServingStatus
}

func (w *watchStream) Context() context.Context { return w.ctx }

func (w *watchStream) Send(r *healthpb.HealthCheckResponse) error {
	select {
	case w.out <- r.GetStatus():
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}
