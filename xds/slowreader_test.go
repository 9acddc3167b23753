package xds

import (
	"context"
	"fmt"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

// bigService is svc with an assignment of n endpoints: about 60 bytes each
// on the wire.
func bigService(name string, n int, port uint32) *model.Resources {
	r := svc(name, 1)
	lbs := make([]*endpointv3.LbEndpoint, n)
	for i := range lbs {
		lbs[i] = &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
			}}},
		}}}
	}
	r.Assignments = encs(&endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LoadBalancingWeight: wrapperspb.UInt32(1), LbEndpoints: lbs,
	}}})
	return r
}

// muteStream opens a SotW stream, on a connection of its own, whose
// client never calls Recv.
func muteStream(t *testing.T, h *harness) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	mute, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return mute
}

// A client that subscribes and then never reads stalls no one: its
// responses (megabytes, far past gRPC's flow-control windows) block only
// its own stream, and another client on another connection still gets
// every change at once.
func TestClientThatNeverReadsStallsNoOne(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"big": bigService("big", 20000, 1), "small": svc("small", 1)})

	mute := muteStream(t, h)
	// Subscribe, and never call Recv.
	if err := mute.Send(&discoveryv3.DiscoveryRequest{
		Node: &corev3.Node{Id: "mute"}, TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"big"},
	}); err != nil {
		t.Fatal(err)
	}

	c := h.client(t)
	c.request(resourcev3.EndpointType, []string{"small", "big"}, nil, "")
	first := c.next()
	if got := names(t, first); !slices.Contains(got, "small") {
		t.Fatalf("first response %v", got)
	}
	resp := first
	if !slices.Contains(names(t, first), "big") {
		c.request(resourcev3.EndpointType, []string{"small", "big"}, first, "")
		resp = c.next()
	}
	// Each version of "big" is about 1.2 MB: five of them are far more than
	// the mute stream's windows can hold, so its sends block.
	for i := range 5 {
		apply(t, h.cache, false, map[string]*model.Resources{"big": bigService("big", 20000, uint32(2+i))})
		c.request(resourcev3.EndpointType, []string{"small", "big"}, resp, "")
		resp = c.next()
	}
	apply(t, h.cache, false, map[string]*model.Resources{"small": svc("small", 7)})
	c.request(resourcev3.EndpointType, []string{"small", "big"}, resp, "")
	for {
		resp = c.next() // fails the test if nothing comes within 10 s
		if slices.Contains(names(t, resp), "small") {
			break
		}
		c.request(resourcev3.EndpointType, []string{"small", "big"}, resp, "")
	}
}

// A client that never reads, subscribed to every listener, is told of
// every listener that goes but never takes it. While Services come and go
// it must not keep every slot of every name deleted: past maxHeldTombs
// the cache moves its stream's state off the tombstones for it (the
// stream is blocked sending), and reuses them. The stream stays connected.
func TestClientThatNeverReadsHoldsNoSlots(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"big": bigService("big", 20000, 1)})
	mute := muteStream(t, h)
	// Every listener, then the big assignment; never Recv.
	for _, req := range []*discoveryv3.DiscoveryRequest{
		{Node: &corev3.Node{Id: "mute"}, TypeUrl: resourcev3.ListenerType},
		{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"big"}},
	} {
		if err := mute.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		cs := h.srv.Clients()
		return len(cs) == 1 && cs[0].Types[endpointType].Subscribed == 1 && cs[0].Types[listenerType].Wildcard
	})
	// Versions of big far past what the stream's windows hold: its sends
	// block.
	for i := range 5 {
		apply(t, h.cache, false, map[string]*model.Resources{"big": bigService("big", 20000, uint32(2+i))})
	}
	const batch = 100
	deleted := 0
	var prev []string
	for round := 0; deleted < 3*maxHeldTombs; round++ {
		u := map[string]*model.Resources{}
		var next []string
		for i := range batch {
			n := fmt.Sprintf("r%d-%d", round, i)
			next = append(next, n)
			u[n] = svc(n, 1)
		}
		for _, n := range prev {
			u[n] = nil
		}
		deleted += len(prev) * 2 // each Service has a listener and an alias
		apply(t, h.cache, false, u)
		prev = next
	}
	if held := h.cache.slots[listenerType].ndead.Load(); held > maxHeldTombs+2*2*batch {
		t.Fatalf("%d listener tombstones held after %d names deleted, want at most about %d", held, deleted, maxHeldTombs)
	}
	if cs := h.srv.Clients(); len(cs) != 1 {
		t.Fatalf("%d clients connected, want the mute one", len(cs))
	}
}
