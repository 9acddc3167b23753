package translator

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-xds/switchboard/model"
)

// TestRegions: endpoints whose Nodes carry a region (the watcher's
// Options.NodeRegions) are grouped by region and zone, and the locality
// carries both; an endpoint without a zone keeps the "unknown" sub-zone.
func TestRegions(t *testing.T) {
	ep := func(addr, region, zone string) model.Endpoint {
		return model.Endpoint{Addresses: []string{addr}, Port: 8080, Ready: true, Serving: true, Region: region, Zone: zone}
	}
	svc := &model.Service{
		Key:        model.ServiceKey{Namespace: "ns", Name: "geo"},
		SliceCount: 1,
		Ports: []model.Port{{Name: "grpc", Port: 80, Protocol: "TCP", Endpoints: []model.Endpoint{
			ep("10.0.0.1", "eu", "eu-a"), ep("10.0.0.2", "eu", "eu-a"), ep("10.0.1.1", "us", "us-a"), ep("10.0.2.1", "us", ""),
		}}},
	}
	res, diags := translate(t, Options{}, svc)
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	checkGRPCRules(t, res)
	var got []*corev3.Locality
	var weights []uint32
	for _, l := range res.Assignments[0].GetEndpoints() {
		got = append(got, l.GetLocality())
		weights = append(weights, l.GetLoadBalancingWeight().GetValue())
	}
	want := []*corev3.Locality{
		{Region: "eu", Zone: "eu-a"},
		{Region: "us", SubZone: ZonelessSubZone},
		{Region: "us", Zone: "us-a"},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Fatalf("localities (-want +got):\n%s", diff)
	}
	if weights[0] != 2 || weights[1] != 1 || weights[2] != 1 {
		t.Fatalf("weights = %v, want [2 1 1]", weights)
	}
}
