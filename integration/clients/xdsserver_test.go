package clients_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// xdsServer is a minimal SotW ADS management server for one service name,
// made of go-control-plane parts only: one LinearCache per resource type,
// joined by a MuxCache keyed by type URL. A SnapshotCache would not do: in
// ADS mode it does not answer a request that names only a subset of its
// resources, which is what every client sends. It exists to prove the
// client programs, not Switchboard.
type xdsServer struct {
	addr   string
	name   string // listener name == the xds:/// target's name
	eds    *cachev3.LinearCache
	server *grpc.Server

	mu          sync.Mutex
	nacks       []string             // "<client> <type>: <error detail>"
	firstStream time.Time            // first ADS request seen
	agents      map[string]time.Time // user agent "name version" -> first request
}

const (
	routeName   = "route-0"
	clusterName = "cluster-0"
	edsName     = "eds-0"
)

// startXDS serves name's Listener, RouteConfiguration, Cluster and an
// assignment holding endpoints on 127.0.0.1:0 until the test ends.
func startXDS(t *testing.T, name string, endpoints ...string) *xdsServer {
	t.Helper()
	s := &xdsServer{name: name, agents: map[string]time.Time{}}
	lds := cachev3.NewLinearCache(resourcev3.ListenerType)
	rds := cachev3.NewLinearCache(resourcev3.RouteType)
	cds := cachev3.NewLinearCache(resourcev3.ClusterType)
	s.eds = cachev3.NewLinearCache(resourcev3.EndpointType)
	must(t, lds.UpdateResource(name, listener(t, name)))
	must(t, rds.UpdateResource(routeName, route()))
	must(t, cds.UpdateResource(clusterName, cluster()))
	s.setEndpoints(t, endpoints...)
	mux := &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return r.GetTypeUrl() },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return r.GetTypeUrl() },
		Caches: map[string]cachev3.Cache{
			resourcev3.ListenerType: lds, resourcev3.RouteType: rds,
			resourcev3.ClusterType: cds, resourcev3.EndpointType: s.eds,
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	xds := serverv3.NewServer(ctx, mux, serverv3.CallbackFuncs{StreamRequestFunc: s.onRequest})
	s.server = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s.server, xds)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s.addr = lis.Addr().String()
	served := make(chan error, 1)
	go func() { served <- s.server.Serve(lis) }()
	t.Cleanup(func() {
		s.server.Stop()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("xds server: %v", err)
		}
	})
	return s
}

// bootstrap is the client bootstrap JSON pointing at s.
func (s *xdsServer) bootstrap() []byte {
	return fmt.Appendf(nil, `{"xds_servers":[{"server_uri":%q,"channel_creds":[{"type":"insecure"}],`+
		`"server_features":["xds_v3"]}],"node":{"id":"test","locality":{}}}`, s.addr)
}

// setEndpoints replaces the assignment's endpoints ("host:port" each).
func (s *xdsServer) setEndpoints(t *testing.T, endpoints ...string) {
	t.Helper()
	lbs := make([]*endpointv3.LbEndpoint, 0, len(endpoints))
	for _, ep := range endpoints {
		host, portStr, err := net.SplitHostPort(ep)
		must(t, err)
		port, err := strconv.ParseUint(portStr, 10, 16)
		must(t, err)
		lbs = append(lbs, &endpointv3.LbEndpoint{
			HealthStatus: corev3.HealthStatus_HEALTHY,
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
				}}},
			}},
		})
	}
	must(t, s.eds.UpdateResource(edsName, &endpointv3.ClusterLoadAssignment{
		ClusterName: edsName,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality: &corev3.Locality{Zone: "z1"},
			// Without a weight the clients silently drop the locality.
			LoadBalancingWeight: wrapperspb.UInt32(1),
			LbEndpoints:         lbs,
		}},
	}))
}

// onRequest records NACKs and which clients connected.
func (s *xdsServer) onRequest(_ int64, req *discoveryv3.DiscoveryRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.firstStream.IsZero() {
		s.firstStream = now
	}
	if n := req.GetNode(); n != nil {
		agent := n.GetUserAgentName() + " " + n.GetUserAgentVersion()
		if _, ok := s.agents[agent]; !ok {
			s.agents[agent] = now
		}
	}
	if d := req.GetErrorDetail(); d != nil {
		s.nacks = append(s.nacks, fmt.Sprintf("%s: %s", req.GetTypeUrl(), d.GetMessage()))
	}
	return nil
}

// nackList returns every NACK seen so far.
func (s *xdsServer) nackList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.nacks...)
}

// firstRequest returns when the first ADS request arrived.
func (s *xdsServer) firstRequest() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstStream
}

// userAgents returns the user agents that sent a node.
func (s *xdsServer) userAgents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.agents))
	for a := range s.agents {
		out = append(out, a)
	}
	return out
}

// adsSource says "over the same ADS stream".
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func listener(t *testing.T, name string) *listenerv3.Listener {
	router := toAny(t, &routerv3.Router{})
	hcm := toAny(t, &hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: adsSource(), RouteConfigName: routeName,
		}},
		// grpc-go and C-core NACK an empty filter list; router must be last.
		HttpFilters: []*hcmv3.HttpFilter{{
			Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	})
	return &listenerv3.Listener{Name: name, ApiListener: &listenerv3.ApiListener{ApiListener: hcm}}
}

func route() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: routeName,
		VirtualHosts: []*routev3.VirtualHost{{
			Name: "vh-0", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: ""}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: clusterName},
				}},
			}},
		}},
	}
}

func cluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 clusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: edsName},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
}

func toAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	must(t, err)
	return a
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
