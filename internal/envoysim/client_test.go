package envoysim

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// stubADS is a scripted ADS server: every request a stream receives goes to
// reqs, every response the test puts on resps is sent.
type stubADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	reqs       chan proto.Message
	resps      chan *discoveryv3.DiscoveryResponse
	deltaResps chan *discoveryv3.DeltaDiscoveryResponse
}

func (s *stubADS) StreamAggregatedResources(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return serveScripted(st, s.reqs, s.resps)
}

func (s *stubADS) DeltaAggregatedResources(st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	return serveScripted(st, s.reqs, s.deltaResps)
}

// serveScripted forwards what the stream receives to reqs and sends what
// arrives on resps, until the stream ends.
func serveScripted[Req, Resp proto.Message](st interface {
	Context() context.Context
	Recv() (Req, error)
	Send(Resp) error
}, reqs chan<- proto.Message, resps <-chan Resp,
) error {
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				return
			}
			reqs <- r
		}
	}()
	for {
		select {
		case <-st.Context().Done():
			return nil
		case r := <-resps:
			if err := st.Send(r); err != nil {
				return err
			}
		}
	}
}

func startStub(t *testing.T) (*stubADS, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stubADS{reqs: make(chan proto.Message, 64), resps: make(chan *discoveryv3.DiscoveryResponse), deltaResps: make(chan *discoveryv3.DeltaDiscoveryResponse)}
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, s)
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return s, lis.Addr().String()
}

// next returns the next request the stub received, failing after a deadline.
func next[T proto.Message](t *testing.T, s *stubADS) T {
	t.Helper()
	select {
	case r := <-s.reqs:
		v, ok := r.(T)
		if !ok {
			t.Fatalf("request %T, want %T", r, v)
		}
		return v
	case <-time.After(10 * time.Second):
		var v T
		t.Fatalf("no %T within 10s", v)
		return v
	}
}

// resources returns the fixture's resources of one type, encoded.
func resources(t *testing.T, c *Config, typeURL string, drop ...string) []*anypb.Any {
	var out []*anypb.Any
	add := func(name string, m proto.Message) {
		if !slices.Contains(drop, name) {
			out = append(out, mustAny(t, m))
		}
	}
	switch typeURL {
	case resourcev3.ListenerType:
		for _, n := range sortedKeys(c.Listeners) {
			add(n, c.Listeners[n])
		}
	case resourcev3.ClusterType:
		for _, n := range sortedKeys(c.Clusters) {
			add(n, c.Clusters[n])
		}
	case resourcev3.RouteType:
		for _, n := range sortedKeys(c.Routes) {
			add(n, c.Routes[n])
		}
	case resourcev3.EndpointType:
		for _, n := range sortedKeys(c.Assignments) {
			add(n, c.Assignments[n])
		}
	}
	return out
}

var (
	testNode = &corev3.Node{Id: "app-1.ns", Cluster: "app"}
	allEDS   = []string{dbCanon, webCanon, qCanon}
)

func badCluster(t *testing.T) *anypb.Any {
	return mustAny(t, &clusterv3.Cluster{
		Name: "bad", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{"x": {TypeUrl: "type.googleapis.com/no.such.Type"}},
	})
}

var sortStr = cmpopts.SortSlices(func(a, b string) bool { return a < b })

// dialStub starts a scripted server and a client of it, both stopped at the
// end of the test.
func dialStub(t *testing.T, delta bool) (*stubADS, *Client, context.Context) {
	t.Helper()
	s, addr := startStub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cl, err := Dial(ctx, addr, testNode, delta)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return s, cl, ctx
}

// full reports whether the client holds the whole fixture and it checks clean.
func full(c *Config) bool {
	return len(c.Listeners) == 6 && len(c.Clusters) == 4 && len(c.Routes) == 1 && len(c.Assignments) == 3 && len(Check(c)) == 0
}

func TestClientSotW(t *testing.T) {
	s, cl, ctx := dialStub(t, false)
	want := goodConfig(t)

	for _, typ := range wildcardTypes {
		r := next[*discoveryv3.DiscoveryRequest](t, s)
		if r.GetTypeUrl() != typ || len(r.GetResourceNames()) != 0 || r.GetNode().GetUserAgentName() != "envoy" {
			t.Fatalf("first requests: got %v, want wildcard %s with user_agent_name envoy", r, typ)
		}
	}
	respond := func(typ, version string, res []*anypb.Any) {
		s.resps <- &discoveryv3.DiscoveryResponse{TypeUrl: typ, VersionInfo: version, Nonce: typ + version, Resources: res}
	}
	ack := func(typ, version, nonce string) *discoveryv3.DiscoveryRequest {
		t.Helper()
		r := next[*discoveryv3.DiscoveryRequest](t, s)
		if r.GetTypeUrl() != typ || r.GetVersionInfo() != version || r.GetResponseNonce() != nonce {
			t.Fatalf("got %s version %q nonce %q, want %s version %q nonce %q", r.GetTypeUrl(), r.GetVersionInfo(), r.GetResponseNonce(), typ, version, nonce)
		}
		return r
	}
	subscribe := func(typ string, names ...string) {
		t.Helper()
		r := next[*discoveryv3.DiscoveryRequest](t, s)
		if r.GetTypeUrl() != typ || !cmp.Equal(names, r.GetResourceNames(), sortStr, cmpopts.EquateEmpty()) {
			t.Fatalf("got %s %v, want subscription %s %v", r.GetTypeUrl(), r.GetResourceNames(), typ, names)
		}
	}

	respond(resourcev3.ClusterType, "1", resources(t, want, resourcev3.ClusterType))
	if r := ack(resourcev3.ClusterType, "1", resourcev3.ClusterType+"1"); r.GetErrorDetail() != nil {
		t.Fatalf("CDS NACKed: %v", r.GetErrorDetail())
	}
	subscribe(resourcev3.EndpointType, allEDS...)
	respond(resourcev3.ListenerType, "1", resources(t, want, resourcev3.ListenerType))
	ack(resourcev3.ListenerType, "1", resourcev3.ListenerType+"1")
	subscribe(resourcev3.RouteType, "80")
	respond(resourcev3.RouteType, "1", resources(t, want, resourcev3.RouteType))
	ack(resourcev3.RouteType, "1", resourcev3.RouteType+"1")
	respond(resourcev3.EndpointType, "1", resources(t, want, resourcev3.EndpointType))
	ack(resourcev3.EndpointType, "1", resourcev3.EndpointType+"1")
	if err := cl.WaitFor(ctx, full); err != nil {
		t.Fatal(err)
	}

	// A bad cluster: NACK at the old version with the reason; good ones kept.
	respond(resourcev3.ClusterType, "2", append(resources(t, want, resourcev3.ClusterType), badCluster(t)))
	r := ack(resourcev3.ClusterType, "1", resourcev3.ClusterType+"2")
	if !strings.Contains(r.GetErrorDetail().GetMessage(), "no.such.Type") {
		t.Fatalf("NACK error_detail %v, want the unknown type named", r.GetErrorDetail())
	}
	if n := cl.Nacks(); len(n) != 1 || n[0].TypeURL != resourcev3.ClusterType {
		t.Fatalf("Nacks() = %v", n)
	}

	// A cluster goes away: its assignment is unsubscribed and forgotten.
	respond(resourcev3.ClusterType, "3", resources(t, want, resourcev3.ClusterType, webCanon))
	ack(resourcev3.ClusterType, "3", resourcev3.ClusterType+"3")
	subscribe(resourcev3.EndpointType, dbCanon, qCanon)
	if err := cl.WaitFor(ctx, func(c *Config) bool { return c.Assignments[webCanon] == nil && c.Clusters[webCanon] == nil }); err != nil {
		t.Fatal(err)
	}
}

func TestClientDelta(t *testing.T) {
	s, cl, ctx := dialStub(t, true)
	want := goodConfig(t)

	for _, typ := range wildcardTypes {
		r := next[*discoveryv3.DeltaDiscoveryRequest](t, s)
		if r.GetTypeUrl() != typ || len(r.GetResourceNamesSubscribe()) != 0 || r.GetResponseNonce() != "" {
			t.Fatalf("first requests: got %v, want wildcard %s", r, typ)
		}
	}
	n := 0
	respond := func(typ string, res []*anypb.Any, removed ...string) string {
		n++
		resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: typ, Nonce: typ + string(rune('a'+n)), RemovedResources: removed}
		for _, a := range res {
			resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: "n", Version: "v", Resource: a})
		}
		s.deltaResps <- resp
		return resp.Nonce
	}
	ack := func(typ, nonce string) *discoveryv3.DeltaDiscoveryRequest {
		t.Helper()
		r := next[*discoveryv3.DeltaDiscoveryRequest](t, s)
		if r.GetTypeUrl() != typ || r.GetResponseNonce() != nonce {
			t.Fatalf("got %s nonce %q, want %s nonce %q", r.GetTypeUrl(), r.GetResponseNonce(), typ, nonce)
		}
		return r
	}
	subscribe := func(typ string, add, drop []string) {
		t.Helper()
		r := next[*discoveryv3.DeltaDiscoveryRequest](t, s)
		if r.GetTypeUrl() != typ || !cmp.Equal(add, r.GetResourceNamesSubscribe(), sortStr, cmpopts.EquateEmpty()) ||
			!cmp.Equal(drop, r.GetResourceNamesUnsubscribe(), sortStr, cmpopts.EquateEmpty()) {
			t.Fatalf("got %s +%v -%v, want %s +%v -%v", r.GetTypeUrl(), r.GetResourceNamesSubscribe(), r.GetResourceNamesUnsubscribe(), typ, add, drop)
		}
	}

	nonce := respond(resourcev3.ClusterType, resources(t, want, resourcev3.ClusterType))
	if r := ack(resourcev3.ClusterType, nonce); r.GetErrorDetail() != nil {
		t.Fatalf("CDS NACKed: %v", r.GetErrorDetail())
	}
	subscribe(resourcev3.EndpointType, allEDS, nil)
	ack(resourcev3.ListenerType, respond(resourcev3.ListenerType, resources(t, want, resourcev3.ListenerType)))
	subscribe(resourcev3.RouteType, []string{"80"}, nil)
	ack(resourcev3.RouteType, respond(resourcev3.RouteType, resources(t, want, resourcev3.RouteType)))
	ack(resourcev3.EndpointType, respond(resourcev3.EndpointType, resources(t, want, resourcev3.EndpointType)))
	if err := cl.WaitFor(ctx, full); err != nil {
		t.Fatal(err)
	}

	// removed_resources on EDS is ignored (Envoy empties with a CLA instead).
	ack(resourcev3.EndpointType, respond(resourcev3.EndpointType, nil, dbCanon))
	// removed_resources on CDS acts, and EDS follows.
	ack(resourcev3.ClusterType, respond(resourcev3.ClusterType, nil, webCanon))
	subscribe(resourcev3.EndpointType, nil, []string{webCanon})
	if err := cl.WaitFor(ctx, func(c *Config) bool { return c.Clusters[webCanon] == nil && c.Assignments[webCanon] == nil }); err != nil {
		t.Fatal(err)
	}
	if cl.Snapshot().Assignments[dbCanon] == nil {
		t.Fatal("EDS removed_resources dropped an assignment")
	}

	nonce = respond(resourcev3.ClusterType, []*anypb.Any{badCluster(t)})
	if r := ack(resourcev3.ClusterType, nonce); !strings.Contains(r.GetErrorDetail().GetMessage(), "no.such.Type") {
		t.Fatalf("NACK error_detail %v, want the unknown type named", r.GetErrorDetail())
	}
}
