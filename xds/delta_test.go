package xds

import (
	"context"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

// deltaClient is a raw delta ADS client for the feature tests below.
type deltaClient struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	resps  <-chan *discoveryv3.DeltaDiscoveryResponse
	errc   <-chan error
	node   *corev3.Node
	sent   bool
}

func (h *harness) deltaClient(t *testing.T) *deltaClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(h.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &deltaClient{t: t, stream: s}
	c.resps, c.errc = receive(s.Recv)
	return c
}

func (c *deltaClient) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	if !c.sent {
		req.Node = c.node
		if req.Node == nil {
			req.Node = &corev3.Node{Id: "delta-node", UserAgentName: "envoy"}
		}
		c.sent = true
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

func (c *deltaClient) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: names})
}

func (c *deltaClient) ack(r *discoveryv3.DeltaDiscoveryResponse) {
	c.t.Helper()
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()})
}

func (c *deltaClient) next() *discoveryv3.DeltaDiscoveryResponse {
	c.t.Helper()
	return nextResponse(c.t, c.resps, c.errc)
}

func deltaNames(r *discoveryv3.DeltaDiscoveryResponse) []string {
	var out []string
	for _, res := range r.GetResources() {
		out = append(out, res.GetName())
	}
	return out
}

func deltaWeight(t *testing.T, r *discoveryv3.DeltaDiscoveryResponse, i int) uint32 {
	t.Helper()
	m, err := r.GetResources()[i].GetResource().UnmarshalNew()
	if err != nil {
		t.Fatal(err)
	}
	return m.(*endpointv3.ClusterLoadAssignment).GetEndpoints()[0].GetLoadBalancingWeight().GetValue()
}

func TestDeltaSubscribeAnswersExistingAndMissing(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	c := h.deltaClient(t)
	c.subscribe(resourcev3.EndpointType, "a", "missing")
	r := c.next()
	if got := deltaNames(r); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("resources = %v, want [a]", got)
	}
	// A name that does not exist is reported at once, as removed.
	if got := r.GetRemovedResources(); !slices.Equal(got, []string{"missing"}) {
		t.Fatalf("removed = %v, want [missing]", got)
	}
	if v := r.GetResources()[0].GetVersion(); v != h.cache.getView(endpointType, "a", nil).Version() {
		t.Fatalf("resource version %q is not the cache's content version", v)
	}
	c.ack(r)
	// Only the changed assignment is sent, and only to its subscriber.
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": svc("a", 2), "ns/b": svc("b", 3)})
	r = c.next()
	if got := deltaNames(r); !slices.Equal(got, []string{"a"}) || deltaWeight(t, r, 0) != 2 {
		t.Fatalf("after a change, resources = %v", got)
	}
	// When the missing name appears, it is sent.
	c.ack(r)
	apply(t, h.cache, false, map[string]*model.Resources{"ns/missing": svc("missing", 4)})
	if got := deltaNames(c.next()); !slices.Equal(got, []string{"missing"}) {
		t.Fatalf("after the Service appeared, resources = %v", got)
	}
}

func TestDeltaDeletedServiceIsRemoved(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	c := h.deltaClient(t)
	c.subscribe(resourcev3.ListenerType, "a", "b")
	r := c.next()
	c.ack(r)
	apply(t, h.cache, false, map[string]*model.Resources{"ns/b": nil})
	r = c.next()
	if len(r.GetResources()) != 0 || !slices.Equal(r.GetRemovedResources(), []string{"b"}) {
		t.Fatalf("after b was deleted: resources %v, removed %v; want only b removed", deltaNames(r), r.GetRemovedResources())
	}
	if got := testutil.ToFloat64(h.metrics.removals.WithLabelValues("lds")); got != 1 {
		t.Fatalf("removed_resources_total{lds} = %v, want 1", got)
	}
}

func TestDeltaWildcard(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	c := h.deltaClient(t)
	// Envoy's first CDS request names nothing: a wildcard subscription.
	c.subscribe(resourcev3.ClusterType)
	r := c.next()
	if got := deltaNames(r); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("wildcard CDS = %v, want [a b]", got)
	}
	c.ack(r)
	apply(t, h.cache, false, map[string]*model.Resources{"ns/c": svc("c", 1)})
	r = c.next()
	if got := deltaNames(r); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after c was added, CDS = %v, want only [c]", got)
	}
	c.ack(r)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/b": svc("b", 1), "ns/c": svc("c", 1)})
	r = c.next()
	if len(r.GetResources()) != 0 || !slices.Equal(r.GetRemovedResources(), []string{"a"}) {
		t.Fatalf("after a left the world: resources %v, removed %v", deltaNames(r), r.GetRemovedResources())
	}
	cs := h.srv.Clients()
	if len(cs) != 1 || cs[0].Protocol != "delta" || cs[0].Class != model.ClassEnvoy || !cs[0].Types[clusterType].Wildcard {
		t.Fatalf("client status = %+v", cs)
	}
}

func TestDeltaInitialVersionsSendOnlyWhatDiffers(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	current := h.cache.getView(endpointType, "a", nil).Version()
	// A client that reconnects (say, to another replica) holding a at the
	// current version and b at an old one.
	c := h.deltaClient(t)
	c.send(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:                 resourcev3.EndpointType,
		ResourceNamesSubscribe:  []string{"a", "b", "gone"},
		InitialResourceVersions: map[string]string{"a": current, "b": "old", "gone": "old"},
	})
	r := c.next()
	if got := deltaNames(r); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("resources = %v, want only b (a is current)", got)
	}
	if got := r.GetRemovedResources(); !slices.Equal(got, []string{"gone"}) {
		t.Fatalf("removed = %v, want [gone]", got)
	}
}

func TestDeltaNACKedVersionIsNotResent(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	c := h.deltaClient(t)
	c.subscribe(resourcev3.EndpointType, "a")
	r := c.next()
	c.send(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl: resourcev3.EndpointType, ResponseNonce: r.GetNonce(),
		ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: "bad weight"},
	})
	waitFor(t, func() bool {
		cs := h.srv.Clients()
		return len(cs) == 1 && cs[0].Types[endpointType].Nacks == 1
	})
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": svc("a", 7)})
	r = c.next()
	if got := deltaWeight(t, r, 0); got != 7 {
		t.Fatalf("after NACK the next response had weight %d, want the new version (7)", got)
	}
	if cs := h.srv.Clients(); cs[0].Types[endpointType].LastNack != "bad weight" {
		t.Fatalf("client status = %+v", cs[0])
	}
}

func TestDeltaUnsubscribeStopsUpdates(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	c := h.deltaClient(t)
	c.subscribe(resourcev3.EndpointType, "a", "b")
	c.ack(c.next())
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesUnsubscribe: []string{"a"}})
	waitFor(t, func() bool {
		cs := h.srv.Clients()
		return len(cs) == 1 && cs[0].Types[endpointType].Subscribed == 1
	})
	// a changes first, b second: a response for a would come before b's,
	// or with it, so the next response must be b's alone.
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": svc("a", 5)})
	apply(t, h.cache, false, map[string]*model.Resources{"ns/b": svc("b", 6)})
	if got := deltaNames(c.next()); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after unsubscribing a, resources = %v, want [b]", got)
	}
}

func TestDeltaNothingServedBeforeFullWorld(t *testing.T) {
	h := newHarness(t)
	c := h.deltaClient(t)
	c.subscribe(resourcev3.ListenerType, "a", "b")
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": svc("a", 1)})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	r := c.next()
	if got := deltaNames(r); !slices.Equal(got, []string{"a", "b"}) || len(r.GetRemovedResources()) != 0 {
		t.Fatalf("first response = %v removed %v, want [a b] and nothing removed", got, r.GetRemovedResources())
	}
}

func TestDeltaViewsAndShortNames(t *testing.T) {
	h := newHarness(t)
	canonical := "s.ns.svc.cluster.local:80"
	res := svc(canonical, 1)
	res.Variants = []model.Variant{{
		Type: model.Assignment,
		View: model.View{Zone: "z1"},
		Resource: enc(&endpointv3.ClusterLoadAssignment{
			ClusterName: canonical,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LoadBalancingWeight: wrapperspb.UInt32(9)}},
		}),
	}}
	res.Aliases = map[string]string{"s.ns:80": canonical}
	apply(t, h.cache, true, map[string]*model.Resources{"ns/s": res})
	c := h.deltaClient(t)
	c.node = &corev3.Node{Id: "z1", Locality: &corev3.Locality{Zone: "z1"}, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		"NAMESPACE": structpb.NewStringValue("ns"),
	}}}
	c.subscribe(resourcev3.EndpointType, canonical)
	if got := deltaWeight(t, c.next(), 0); got != 9 {
		t.Fatalf("client in z1 got weight %d, want its zone's variant (9)", got)
	}
	c.subscribe(resourcev3.ListenerType, "s:80")
	if got := deltaNames(c.next()); !slices.Equal(got, []string{"s:80"}) {
		t.Fatalf("short name: LDS = %v, want [s:80]", got)
	}
}
