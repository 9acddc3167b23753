package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// grpcRouteClient is the part of a proxyless gRPC client that a route
// change reaches, as grpc-go's xDS client asks for it: a delta ADS stream
// (user agent "grpc-go", node metadata NAMESPACE) that subscribes to one
// Listener by name, then to the RouteConfiguration its API listener's
// HttpConnectionManager names, and ACKs every response. Each
// RouteConfiguration received is sent on routes (the test reads them all).
type grpcRouteClient struct {
	routes chan *routev3.RouteConfiguration
	errc   chan error
}

// dialGRPCRouteClient starts a client for listener in namespace ns; it
// stops when the test ends.
func dialGRPCRouteClient(tb testing.TB, addr, id, ns, listener string) *grpcRouteClient {
	tb.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(func() { cancel(); _ = conn.Close() })
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	md, err := structpb.NewStruct(map[string]any{"NAMESPACE": ns})
	if err != nil {
		tb.Fatal(err)
	}
	node := &corev3.Node{Id: id, UserAgentName: "grpc-go", Metadata: md}
	if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ListenerType, ResourceNamesSubscribe: []string{listener}}); err != nil {
		tb.Fatal(err)
	}
	c := &grpcRouteClient{routes: make(chan *routev3.RouteConfiguration, 1024), errc: make(chan error, 1)}
	go func() { c.errc <- c.run(st) }()
	return c
}

func (c *grpcRouteClient) run(st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient) error {
	subscribed := ""
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, r := range resp.GetResources() {
			switch resp.GetTypeUrl() {
			case resourcev3.ListenerType:
				var l listenerv3.Listener
				var h hcmv3.HttpConnectionManager
				if err := r.GetResource().UnmarshalTo(&l); err != nil {
					return err
				}
				if err := l.GetApiListener().GetApiListener().UnmarshalTo(&h); err != nil {
					return err
				}
				if name := h.GetRds().GetRouteConfigName(); name != subscribed {
					subscribed = name
					if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNamesSubscribe: []string{name}}); err != nil {
						return err
					}
				}
			case resourcev3.RouteType:
				rc := new(routev3.RouteConfiguration)
				if err := r.GetResource().UnmarshalTo(rc); err != nil {
					return err
				}
				c.routes <- rc
			}
		}
		if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}); err != nil {
			return err
		}
	}
}

// waitRoute reads routes until one satisfies ok.
func (c *grpcRouteClient) waitRoute(ctx context.Context, ok func(*routev3.RouteConfiguration) bool) error {
	for {
		select {
		case rc := <-c.routes:
			if ok(rc) {
				return nil
			}
		case err := <-c.errc:
			return fmt.Errorf("stream ended: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitAllRoutes waits until every client holds a route that satisfies ok.
func waitAllRoutes(tb testing.TB, cs []*grpcRouteClient, ok func(*routev3.RouteConfiguration) bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, c := range cs {
		if err := c.waitRoute(ctx, ok); err != nil {
			tb.Fatalf("gRPC client %d: %v", i, err)
		}
	}
}
