package xds

import (
	"context"
	"net"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/internal/poll"
	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// harness is an ADS server on a loopback port and a raw ADS client: the
// feature tests below check the DiscoveryResponses a client receives.
type harness struct {
	cache   *Cache
	srv     *Server
	metrics *Metrics
	reg     *prometheus.Registry
	conn    *grpc.ClientConn
	// addr is the server's address, for more connections than conn.
	addr string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, ServerOptions{})
}

// newHarnessWith is newHarness with opts for the server (its Metrics are
// the harness's own).
func newHarnessWith(t *testing.T, opts ServerOptions) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	h := &harness{cache: newTestCache(), metrics: NewMetrics(reg), reg: reg}
	opts.Metrics = h.metrics
	h.srv = NewServer(h.cache, opts)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = lis.Addr().String()
	// As cmd/switchboard wires it: the limits included.
	gs := grpc.NewServer(h.srv.GRPCServerOptions()...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, h.srv)
	statusv3.RegisterClientStatusDiscoveryServiceServer(gs, NewCSDS(h.srv, CSDSOptions{}))
	go func() { _ = gs.Serve(h.srv.LimitListener(lis)) }()
	t.Cleanup(gs.Stop)
	h.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.conn.Close() })
	return h
}

type client struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resps  <-chan *discoveryv3.DiscoveryResponse
	errc   <-chan error
	first  bool
	node   *corev3.Node
}

func (h *harness) client(t *testing.T) *client {
	t.Helper()
	c, _ := clientOn(t, h.conn)
	return c
}

// clientOn opens a SotW stream on conn; cancel ends it.
func clientOn(t *testing.T, conn *grpc.ClientConn) (c *client, cancel context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c = &client{t: t, stream: s, first: true}
	c.resps, c.errc = receive(s.Recv)
	return c, cancel
}

func (c *client) request(typeURL string, names []string, ack *discoveryv3.DiscoveryResponse, nack string) {
	c.t.Helper()
	req := &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names}
	if c.first {
		req.Node = c.node
		if req.Node == nil {
			req.Node = &corev3.Node{Id: "test-node", UserAgentName: "feature-test"}
		}
		c.first = false
	}
	if ack != nil {
		req.ResponseNonce = ack.GetNonce()
		req.VersionInfo = ack.GetVersionInfo()
	}
	if nack != "" {
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: nack}
		req.VersionInfo = ""
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) next() *discoveryv3.DiscoveryResponse {
	c.t.Helper()
	return nextResponse(c.t, c.resps, c.errc)
}

// receive runs recv in a goroutine until it fails: responses go to the
// first channel, the error that ended the stream to the second.
func receive[R any](recv func() (R, error)) (<-chan R, <-chan error) {
	resps, errc := make(chan R, 100), make(chan error, 1)
	go func() {
		for {
			r, err := recv()
			if err != nil {
				errc <- err
				return
			}
			resps <- r
		}
	}()
	return resps, errc
}

// nextResponse returns the next response, failing the test if the stream
// ends or nothing arrives within 10 s.
func nextResponse[R any](t *testing.T, resps <-chan R, errc <-chan error) R {
	t.Helper()
	var zero R
	select {
	case r := <-resps:
		return r
	case err := <-errc:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no response within 10s")
	}
	return zero
}

// names lists the resource names in a response, decoding each Any.
func names(t *testing.T, r *discoveryv3.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		switch v := m.(type) {
		case *listenerv3.Listener:
			out = append(out, v.GetName())
		case *clusterv3.Cluster:
			out = append(out, v.GetName())
		case *endpointv3.ClusterLoadAssignment:
			out = append(out, v.GetClusterName())
		default:
			t.Fatalf("unexpected %T", m)
		}
	}
	return out
}

// svc builds the resources of a fake Service "name": a listener and a
// cluster called name and an assignment with weight w.
func svc(name string, w uint32) *model.Resources {
	return &model.Resources{
		Listeners: encs(&listenerv3.Listener{Name: name}),
		Clusters:  encs(&clusterv3.Cluster{Name: name}),
		Assignments: encs(&endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LoadBalancingWeight: wrapperspb.UInt32(w)}},
		}),
		Aliases: map[string]string{name + "-alias": name},
	}
}

func weight(t *testing.T, r *discoveryv3.DiscoveryResponse, i int) uint32 {
	t.Helper()
	m, err := r.GetResources()[i].UnmarshalNew()
	if err != nil {
		t.Fatal(err)
	}
	return m.(*endpointv3.ClusterLoadAssignment).GetEndpoints()[0].GetLoadBalancingWeight().GetValue()
}

func apply(t *testing.T, c *Cache, full bool, svcs map[string]*model.Resources) {
	t.Helper()
	if _, err := c.Apply(Update{Full: full, Services: svcs}); err != nil {
		t.Fatal(err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNothingServedBeforeFullWorld(t *testing.T) {
	h := newHarness(t)
	c := h.client(t)
	c.request(resourcev3.ListenerType, []string{"a", "b"}, nil, "")
	// The barrier: the server has read the request (the stream holds the
	// subscription) before the partial world comes, so a server that
	// served it would answer it with [a].
	waitFor(t, func() bool {
		cs := h.srv.Clients()
		return len(cs) == 1 && cs[0].Types[listenerType].Subscribed == 2
	})
	// A partial world (not Full) must not be served ...
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": svc("a", 1)})
	if h.cache.Ready() {
		t.Fatal("a partial world made the cache ready")
	}
	// ... nor a request that comes after it: the stream has handled this
	// one (it holds the subscription) before the full world comes, so a
	// server that served the partial world would have answered it first.
	c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	waitFor(t, func() bool {
		cs := h.srv.Clients()
		return len(cs) == 1 && cs[0].Types[endpointType].Subscribed == 1
	})
	// So the first response the client sees is the full world's.
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	if r := c.next(); r.GetTypeUrl() != resourcev3.ListenerType || !equal(names(t, r), []string{"a", "b"}) {
		t.Fatalf("first response = %s %v, want LDS [a b]", r.GetTypeUrl(), names(t, r))
	}
}

func TestUnknownNameAnsweredAtOnce(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	c := h.client(t)
	c.request(resourcev3.ListenerType, []string{"typo"}, nil, "")
	r := c.next()
	if got := names(t, r); !equal(got, []string{"typo"}) {
		t.Fatalf("LDS for an unknown name = %v, want the unknown listener named typo", got)
	}
	if domain := inlineDomain(t, r); domain != translator.UnknownDomain {
		t.Fatalf("unknown listener routes to domain %q, want %q", domain, translator.UnknownDomain)
	}
	// When the name comes to exist, the real listener replaces it.
	c.request(resourcev3.ListenerType, []string{"typo"}, r, "")
	apply(t, h.cache, false, map[string]*model.Resources{"ns/typo": svc("typo", 1)})
	r = c.next()
	m, _ := r.GetResources()[0].UnmarshalNew()
	if m.(*listenerv3.Listener).GetApiListener() != nil {
		t.Fatalf("after the Service appeared, LDS still carries the unknown listener")
	}
	c.request(resourcev3.ClusterType, []string{"nope"}, nil, "")
	if r := c.next(); r.GetTypeUrl() != resourcev3.ClusterType || len(r.GetResources()) != 0 {
		t.Fatalf("CDS for an unknown name: %v %v", r.GetTypeUrl(), names(t, r))
	}
}

func TestEDSSendsOnlyChangedAssignments(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	c := h.client(t)
	c.request(resourcev3.EndpointType, []string{"a", "b"}, nil, "")
	r := c.next()
	if got := names(t, r); !equal(got, []string{"a", "b"}) {
		t.Fatalf("initial EDS = %v", got)
	}
	c.request(resourcev3.EndpointType, []string{"a", "b"}, r, "")
	apply(t, h.cache, false, map[string]*model.Resources{"ns/b": svc("b", 2)})
	r = c.next()
	if got := names(t, r); !equal(got, []string{"b"}) || weight(t, r, 0) != 2 {
		t.Fatalf("after changing b, EDS = %v", got)
	}
}

func TestNACKedVersionIsNotResent(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	c := h.client(t)
	c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	r := c.next()
	c.request(resourcev3.EndpointType, []string{"a"}, r, "bad weight")
	// Wait until the server has read the NACK: a change applied earlier
	// would make the NACK stale (it would answer an older response).
	waitFor(t, func() bool {
		cs := h.srv.Clients()
		return len(cs) == 1 && cs[0].Types[endpointType].Nacks == 1
	})
	// If the server re-sent the rejected version after the NACK, it would
	// arrive before the new version applied below.
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": svc("a", 7)})
	r = c.next()
	if got := weight(t, r, 0); got != 7 {
		t.Fatalf("after NACK the next EDS response had weight %d, want the new version (7)", got)
	}
	if got := testutil.ToFloat64(h.metrics.nacks.WithLabelValues("eds", "other")); got != 1 {
		t.Fatalf("nacks{eds,other} = %v, want 1", got)
	}
	cs := h.srv.Clients()
	if len(cs) != 1 || cs[0].NodeID != "test-node" || cs[0].Types[endpointType].Nacks != 1 || cs[0].Types[endpointType].LastNack != "bad weight" {
		t.Fatalf("client status = %+v", cs)
	}
}

func TestAliasListenerNamedAsAsked(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	c := h.client(t)
	c.request(resourcev3.ListenerType, []string{"a-alias"}, nil, "")
	r := c.next()
	if got := names(t, r); !equal(got, []string{"a-alias"}) {
		t.Fatalf("LDS = %v, want [a-alias]", got)
	}
	m, _ := r.GetResources()[0].UnmarshalNew()
	hcm := &hcmv3.HttpConnectionManager{}
	if err := m.(*listenerv3.Listener).GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	if got := hcm.GetRds().GetRouteConfigName(); got != "a" {
		t.Fatalf("alias listener routes to %q, want the canonical route a", got)
	}
	// Deleting the Service deletes the alias too: a full-state LDS without it.
	c.request(resourcev3.ListenerType, []string{"a-alias"}, r, "")
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": nil})
	if r := c.next(); len(r.GetResources()) != 0 {
		t.Fatalf("after delete, LDS = %v", names(t, r))
	}
}

func TestDeletedListenerLeavesFullState(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	c := h.client(t)
	c.request(resourcev3.ListenerType, []string{"a", "b"}, nil, "")
	r := c.next()
	c.request(resourcev3.ListenerType, []string{"a", "b"}, r, "")
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	if got := names(t, c.next()); !equal(got, []string{"a"}) {
		t.Fatalf("after b left the world, LDS = %v, want [a]", got)
	}
}

func TestDrainEndsStreams(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, nil)
	c := h.client(t)
	c.request(resourcev3.ListenerType, []string{"a"}, nil, "")
	c.next()
	h.srv.Drain()
	select {
	case err := <-c.errc:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("drained stream ended with %v, want UNAVAILABLE", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream not ended by Drain")
	}
}

func TestVersionsDeriveFromContent(t *testing.T) {
	a, b := newTestCache(), newTestCache()
	apply(t, a, true, map[string]*model.Resources{"ns/a": svc("a", 3)})
	apply(t, b, true, map[string]*model.Resources{"ns/a": svc("a", 3)})
	for ty := range numTypes {
		for name, r := range a.resources[ty] {
			if got := b.resources[ty][name].Version(); got != r.Version() {
				t.Fatalf("%v %s: versions %s and %s for the same content", ty, name, r.Version(), got)
			}
		}
	}
	n, err := a.Apply(Update{Services: map[string]*model.Resources{"ns/a": svc("a", 3)}})
	if err != nil || n != 0 {
		t.Fatalf("re-applying the same content changed %d resources (err %v)", n, err)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	poll.Until(t, 10*time.Second, "the condition", cond)
}

func TestShortNamesResolveInClientNamespace(t *testing.T) {
	h := newHarness(t)
	canonical := "s.ns.svc.cluster.local:80"
	res := &model.Resources{
		Listeners: encs(&listenerv3.Listener{Name: canonical}),
		Aliases:   map[string]string{"s.ns:80": canonical},
	}
	apply(t, h.cache, true, map[string]*model.Resources{"ns/s": res})

	inNS := h.client(t)
	inNS.node = &corev3.Node{Id: "in-ns", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		"NAMESPACE": structpb.NewStringValue("ns"),
	}}}
	inNS.request(resourcev3.ListenerType, []string{"s:80", "s.ns:80"}, nil, "")
	r := inNS.next()
	if got := names(t, r); !equal(got, []string{"s.ns:80", "s:80"}) {
		t.Fatalf("LDS = %v, want the short and the full alias", got)
	}
	for _, a := range r.GetResources() {
		m, _ := a.UnmarshalNew()
		hcm := &hcmv3.HttpConnectionManager{}
		if err := m.(*listenerv3.Listener).GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
			t.Fatal(err)
		}
		if hcm.GetRds().GetRouteConfigName() != canonical {
			t.Fatalf("%s routes to %q", m.(*listenerv3.Listener).GetName(), hcm.GetRds().GetRouteConfigName())
		}
	}

	// A client that did not say its namespace has no short names.
	other := h.client(t)
	other.request(resourcev3.ListenerType, []string{"s:80"}, nil, "")
	if d := inlineDomain(t, other.next()); d != translator.UnknownDomain {
		t.Fatalf("short name without a namespace got a listener for domain %q, want the unknown listener", d)
	}

	// Unsubscribing the full form keeps the short one watched: deleting
	// the Service still reaches the client.
	inNS.request(resourcev3.ListenerType, []string{"s:80"}, r, "")
	waitFor(t, func() bool {
		cs := h.srv.Clients()
		return len(cs) > 0 && cs[0].Types[listenerType].Subscribed == 1
	})
	apply(t, h.cache, true, nil)
	if r := inNS.next(); len(r.GetResources()) != 0 {
		t.Fatalf("after delete, LDS = %v", names(t, r))
	}
}

func TestZoneVariantsPerClientZone(t *testing.T) {
	h := newHarness(t)
	res := svc("a", 1)
	res.Variants = []model.Variant{{
		Type: model.Assignment,
		View: model.View{Zone: "z1"},
		Resource: enc(&endpointv3.ClusterLoadAssignment{
			ClusterName: "a",
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LoadBalancingWeight: wrapperspb.UInt32(9)}},
		}),
	}}
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": res})

	inZone := h.client(t)
	inZone.node = &corev3.Node{Id: "z1-client", Locality: &corev3.Locality{Zone: "z1"}}
	inZone.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	if got := weight(t, inZone.next(), 0); got != 9 {
		t.Fatalf("client in z1 got weight %d, want the z1 variant (9)", got)
	}
	elsewhere := h.client(t)
	elsewhere.node = &corev3.Node{Id: "z2-client", Locality: &corev3.Locality{Zone: "z2"}}
	elsewhere.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	if got := weight(t, elsewhere.next(), 0); got != 1 {
		t.Fatalf("client in z2 got weight %d, want the plain assignment (1)", got)
	}
	// Clients of one zone share one marshalled variant.
	first, second := h.cache.getView(endpointType, "a", []model.View{{Zone: "z1"}}), h.cache.getView(endpointType, "a", []model.View{{Zone: "z1"}})
	if first != second {
		t.Fatal("two reads of the z1 variant gave two resources")
	}

	// When the variant goes (the zone failed over), the z1 client gets the
	// plain assignment.
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": svc("a", 1)})
	if got := weight(t, inZone.next(), 0); got != 1 {
		t.Fatalf("after the variant went, z1 client got weight %d, want 1", got)
	}
}

// inlineDomain returns the first domain of the inline route of the first
// listener in r, or "" when it routes by RDS.
func inlineDomain(t *testing.T, r *discoveryv3.DiscoveryResponse) string {
	t.Helper()
	m, err := r.GetResources()[0].UnmarshalNew()
	if err != nil {
		t.Fatal(err)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := m.(*listenerv3.Listener).GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	return hcm.GetRouteConfig().GetVirtualHosts()[0].GetDomains()[0]
}

func TestClusterVariantPerClientClass(t *testing.T) {
	h := newHarness(t)
	res := svc("a", 1)
	res.Clusters[0] = enc(&clusterv3.Cluster{Name: "a", LbPolicy: clusterv3.Cluster_RING_HASH})
	res.Variants = []model.Variant{{Type: model.Cluster, View: model.View{Class: model.ClassCCore}, Resource: enc(&clusterv3.Cluster{Name: "a"})}}
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": res})
	policy := func(ua string) clusterv3.Cluster_LbPolicy {
		c := h.client(t)
		c.node = &corev3.Node{Id: ua, UserAgentName: ua}
		c.request(resourcev3.ClusterType, []string{"a"}, nil, "")
		m, err := c.next().GetResources()[0].UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		return m.(*clusterv3.Cluster).GetLbPolicy()
	}
	if got := policy("gRPC C-core"); got != clusterv3.Cluster_ROUND_ROBIN {
		t.Fatalf("C-core client got %v, want its round-robin variant", got)
	}
	if got := policy("gRPC Go"); got != clusterv3.Cluster_RING_HASH {
		t.Fatalf("grpc-go client got %v, want the plain ring-hash cluster", got)
	}
}
