// Package testbackend is the gRPC server that integration tests put behind
// Switchboard. Every backend serves the standard health service
// (grpc.health.v1.Health) and names itself in a response header, so a client
// in any language can call it without generated stubs and tell which
// endpoint answered.
package testbackend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// HeaderName is the response header that carries the backend's id on every
// call.
const HeaderName = "x-backend"

// CheckMethod is the full method name clients call. Its request,
// HealthCheckRequest{}, encodes to zero bytes.
const CheckMethod = "/grpc.health.v1.Health/Check"

// Backend is one running test server. It is safe for concurrent use.
type Backend struct {
	id     string
	lis    net.Listener
	srv    *grpc.Server
	done   chan struct{}
	serr   error
	closed sync.Once
	// failing makes every unary call fail with UNAVAILABLE.
	failing atomic.Bool
	// delay holds every unary call this long (nanoseconds) before it answers.
	delay atomic.Int64
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves the health service,
// reporting SERVING for the empty service name, with the header
// "x-backend: <id>" on every response. It returns once the listener is bound;
// calls made after Start returns are accepted.
func Start(addr, id string) (*Backend, error) {
	if id == "" {
		return nil, errors.New("testbackend: empty id")
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testbackend %s: listen on %s: %w", id, addr, err)
	}
	b := &Backend{id: id, lis: lis, done: make(chan struct{})}
	b.srv = grpc.NewServer(
		grpc.UnaryInterceptor(b.unaryHeader),
		grpc.StreamInterceptor(b.streamHeader),
	)
	// health.NewServer reports SERVING for "" from the start.
	healthpb.RegisterHealthServer(b.srv, health.NewServer())
	go func() {
		defer close(b.done)
		b.serr = b.srv.Serve(lis)
	}()
	return b, nil
}

// ID returns the id the backend reports in its x-backend header.
func (b *Backend) ID() string { return b.id }

// Addr returns the address the backend listens on, as "host:port".
func (b *Backend) Addr() string { return b.lis.Addr().String() }

// Stop closes the listener and every open connection at once, failing
// in-flight calls, and waits for the serving goroutine to return. It is
// idempotent. The returned error is the serve error, if serving ended for
// any reason other than Stop.
func (b *Backend) Stop() error {
	b.closed.Do(b.srv.Stop)
	<-b.done
	if b.serr != nil && !errors.Is(b.serr, grpc.ErrServerStopped) {
		return fmt.Errorf("testbackend %s: serve: %w", b.id, b.serr)
	}
	return nil
}

// GracefulStop stops as a gRPC server should on SIGTERM: it closes the
// listener, sends GOAWAY on every connection so clients move new calls
// elsewhere, and waits for in-flight calls to end, for at most timeout;
// then it stops like Stop. The returned error is Stop's.
func (b *Backend) GracefulStop(timeout time.Duration) error {
	b.closed.Do(func() {
		done := make(chan struct{})
		go func() {
			b.srv.GracefulStop()
			close(done)
		}()
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			b.srv.Stop()
			<-done
		}
	})
	return b.Stop()
}

func (b *Backend) unaryHeader(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	// The header must be set before the handler writes its response; an
	// error from SetHeader only means the stream is already gone.
	if b.failing.Load() {
		// No header first: a call that received response headers is
		// committed and gRPC will not retry it (gRFC A6), and a broken
		// backend answers with a status alone.
		return nil, status.Errorf(codes.Unavailable, "testbackend %s is failing", b.id)
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(HeaderName, b.id))
	if d := time.Duration(b.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return handler(ctx, req)
}

// SetDelay holds every unary call d before it answers (0: none), as an
// overloaded backend would. Deadline tests use it.
func (b *Backend) SetDelay(d time.Duration) { b.delay.Store(int64(d)) }

// SetFailing makes every unary call fail with UNAVAILABLE (true), as a
// broken pod that still passes its readiness probe would, or succeed again
// (false). Outlier detection tests use it.
func (b *Backend) SetFailing(v bool) { b.failing.Store(v) }

func (b *Backend) streamHeader(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	_ = ss.SetHeader(metadata.Pairs(HeaderName, b.id))
	return handler(srv, ss)
}
