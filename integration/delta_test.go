package integration

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestDeltaThroughTheBinary drives switchboard serve over delta ADS, the
// way Envoy subscribes (wildcard CDS, then EDS by name), from a manifest
// folder: the initial state, an endpoint change that arrives as that one
// assignment, and a deleted Service that arrives as removed_resources. No
// real delta client exists on these machines (the three gRPC clients speak
// SotW only, and there is no Envoy binary), so the client is a raw stream.
func TestDeltaThroughTheBinary(t *testing.T) {
	w, sb, _ := standalone(t)
	ns := w.Namespace(t)
	at := func(ip string) harness.Endpoint {
		return harness.Endpoint{Address: ip, State: harness.Ready, Zone: "z1", Pod: "pod-" + ip}
	}
	w.ApplyService(t, newService(ns, "d", port...))
	w.ApplySlice(t, newSlice(ns, "d", "d-1", port, at("10.244.250.1")))
	w.ApplyService(t, newService(ns, "other", port...))
	w.ApplySlice(t, newSlice(ns, "other", "other-1", port, at("10.244.250.9")))
	name := "d." + ns + ".svc.cluster.local:50051"

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(sb.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := openDelta(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	send := func(req *discoveryv3.DeltaDiscoveryRequest) {
		t.Helper()
		if err := stream.send(req); err != nil {
			t.Fatal(err)
		}
	}
	// next returns the next response of type typeURL that mentions name,
	// ACKing every response it reads.
	next := func(typeURL string) *discoveryv3.DeltaDiscoveryResponse {
		t.Helper()
		for {
			r, err := stream.next()
			if err != nil {
				t.Fatalf("waiting for %s: %v", typeURL, err)
			}
			mentions := slices.Contains(r.GetRemovedResources(), name) ||
				slices.ContainsFunc(r.GetResources(), func(res *discoveryv3.Resource) bool { return res.GetName() == name })
			if r.GetTypeUrl() == typeURL && mentions {
				return r
			}
		}
	}
	addresses := func(r *discoveryv3.DeltaDiscoveryResponse) []string {
		t.Helper()
		var out []string
		for _, res := range r.GetResources() {
			cla := &endpointv3.ClusterLoadAssignment{}
			if err := res.GetResource().UnmarshalTo(cla); err != nil {
				t.Fatal(err)
			}
			out = append(out, claAddresses(cla)...)
		}
		return out
	}

	send(&discoveryv3.DeltaDiscoveryRequest{
		Node:    &corev3.Node{Id: "delta-envoy", UserAgentName: "envoy"},
		TypeUrl: resourcev3.ClusterType,
	})
	if r := next(resourcev3.ClusterType); len(r.GetRemovedResources()) != 0 {
		t.Fatalf("first CDS response removes %v", r.GetRemovedResources())
	}
	send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: []string{name}})
	if got := addresses(next(resourcev3.EndpointType)); !slices.Equal(got, []string{"10.244.250.1"}) {
		t.Fatalf("first assignment of d: %v, want [10.244.250.1]", got)
	}

	// One endpoint moves: the update is that assignment and nothing else.
	w.ApplySlice(t, newSlice(ns, "d", "d-1", port, at("10.244.250.2")))
	r := next(resourcev3.EndpointType)
	if got := addresses(r); len(r.GetResources()) != 1 || !slices.Equal(got, []string{"10.244.250.2"}) {
		t.Fatalf("after the move: %d resources, addresses %v; want d's alone at 10.244.250.2", len(r.GetResources()), got)
	}

	// The Service goes: its cluster is removed by name.
	w.DeleteService(t, ns, "d")
	if r := next(resourcev3.ClusterType); !slices.Equal(r.GetRemovedResources(), []string{name}) || len(r.GetResources()) != 0 {
		t.Fatalf("after the delete: removed %v, resources %d; want only %s removed", r.GetRemovedResources(), len(r.GetResources()), name)
	}

	_, body := sb.get("/debug/clients")
	type debugClient struct {
		Protocol string `json:"protocol"`
		NodeID   string `json:"node_id"`
		Class    string `json:"class"`
	}
	var cs []debugClient
	if err := json.Unmarshal([]byte(body), &cs); err != nil {
		t.Fatalf("/debug/clients: %v: %s", err, body)
	}
	if !slices.Contains(cs, debugClient{Protocol: "delta", NodeID: "delta-envoy", Class: "envoy"}) {
		t.Fatalf("/debug/clients does not show the delta client as such: %s", strings.TrimSpace(body))
	}
}
