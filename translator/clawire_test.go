package translator

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

// TestEncodeCLA checks encodeCLA's hand-written encoding against
// protobuf-go's deterministic marshalling, byte for byte, on every
// assignment the translator builds as a message for random views (not
// ready, terminating and dual-stack endpoints, regions, zones, hints and
// traffic distribution, so plain, zone and Envoy variants with priorities,
// DRAINING endpoints and additional addresses), and on edge cases the
// translator does not build today (no locality, a zero or absent weight,
// strings long enough for two-byte lengths).
func TestEncodeCLA(t *testing.T) {
	check := func(what string, cla *endpointv3.ClusterLoadAssignment) {
		t.Helper()
		if !claPlain(cla) {
			t.Fatalf("%s: not plain, so not encoded by hand", what)
		}
		got, err := encodeCLA(cla)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		want, err := encode(cla.GetClusterName(), cla)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !bytes.Equal(got.Wire, want.Wire) || got.Name != want.Name {
			t.Fatalf("%s: encodeCLA differs from protobuf-go\n got %x\nwant %x", what, got.Wire, want.Wire)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	addrs := []string{"10.0.0.1", "10.0.0.2", "10.0.1.1", "fd00::1", "fd00::2"}
	zones := []string{"", "a", "b", "c"}
	variants, drained, priorities, extra := 0, 0, 0, 0
	for range 1000 {
		eps := make([]model.Endpoint, 1+rng.IntN(12))
		hinted := rng.IntN(3) == 0
		for i := range eps {
			ready := rng.IntN(3) != 0
			eps[i] = model.Endpoint{
				Addresses:   []string{addrs[rng.IntN(len(addrs))]},
				Port:        int32(80 + rng.IntN(2)),
				Region:      []string{"", "r"}[rng.IntN(2)],
				Zone:        zones[rng.IntN(len(zones))],
				Ready:       ready,
				Serving:     ready || rng.IntN(2) == 0,
				Terminating: !ready && rng.IntN(2) == 0,
			}
			if rng.IntN(5) == 0 {
				eps[i].Addresses = append(eps[i].Addresses, addrs[rng.IntN(len(addrs))])
			}
			if hinted {
				eps[i].ForZones = []string{zones[1+rng.IntN(3)]}
			}
		}
		svc := &model.Service{TrafficDistribution: []string{"", "PreferClose"}[rng.IntN(2)]}
		pref := topologyPreference(svc, eps)
		base, _ := loadAssignment("c", model.ServiceKey{}, "p", eps)
		check("plain", base)
		zas := zoneAssignments(pref, eps, base, 50)
		for _, za := range zas {
			check("zone "+za.Zone, za.Assignment)
			variants++
			for _, l := range za.Assignment.GetEndpoints() {
				if l.GetPriority() > 0 {
					priorities++
				}
			}
		}
		for _, ca := range envoyAssignments(pref, eps, base, zas, 50) {
			check("class "+ca.Class+" zone "+ca.Zone, ca.Assignment)
			drained++
		}
		for _, l := range base.GetEndpoints() {
			for _, lb := range l.GetLbEndpoints() {
				extra += len(lb.GetEndpoint().GetAdditionalAddresses())
			}
		}
	}
	if variants < 100 || drained < 100 || priorities < 100 || extra < 100 {
		t.Fatalf("the views do not exercise every shape: %d zone variants, %d Envoy variants, %d priority-1 localities, %d additional addresses", variants, drained, priorities, extra)
	}

	long := strings.Repeat("x", 200)
	sock := func(ip string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}}
	}
	lb := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: sock(long, 0),
		AdditionalAddresses: []*endpointv3.Endpoint_AdditionalAddress{
			{Address: sock("fd00::1", 65535)},
		},
	}}}
	check("edge cases", &endpointv3.ClusterLoadAssignment{
		ClusterName: long,
		Endpoints: []*endpointv3.LocalityLbEndpoints{
			{},
			{Locality: &corev3.Locality{}, LoadBalancingWeight: wrapperspb.UInt32(0), Priority: 300},
			{Locality: &corev3.Locality{Region: long, SubZone: "s"}, LbEndpoints: []*endpointv3.LbEndpoint{lb, lb}, LoadBalancingWeight: wrapperspb.UInt32(1 << 20)},
		},
	})
	check("empty", &endpointv3.ClusterLoadAssignment{})
}

// TestEncodeCLAFallsBack checks that an assignment with a field encodeCLA
// does not write is marshalled by protobuf-go, not written without it.
func TestEncodeCLAFallsBack(t *testing.T) {
	base := func() *endpointv3.ClusterLoadAssignment {
		cla, _ := loadAssignment("c", model.ServiceKey{}, "p", []model.Endpoint{{Addresses: []string{"10.0.0.1"}, Port: 80, Ready: true}})
		return cla
	}
	for name, change := range map[string]func(*endpointv3.ClusterLoadAssignment){
		"policy":          func(c *endpointv3.ClusterLoadAssignment) { c.Policy = &endpointv3.ClusterLoadAssignment_Policy{} },
		"locality weight": func(c *endpointv3.ClusterLoadAssignment) { c.Endpoints[0].Proximity = wrapperspb.UInt32(1) },
		"endpoint weight": func(c *endpointv3.ClusterLoadAssignment) {
			c.Endpoints[0].LbEndpoints[0].LoadBalancingWeight = wrapperspb.UInt32(2)
		},
		"hostname": func(c *endpointv3.ClusterLoadAssignment) { c.Endpoints[0].LbEndpoints[0].GetEndpoint().Hostname = "h" },
		"resolver": func(c *endpointv3.ClusterLoadAssignment) {
			c.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress().ResolverName = "r"
		},
		"udp": func(c *endpointv3.ClusterLoadAssignment) {
			c.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress().Protocol = corev3.SocketAddress_UDP
		},
		"endpoint by name": func(c *endpointv3.ClusterLoadAssignment) {
			c.Endpoints[0].LbEndpoints[0].HostIdentifier = &endpointv3.LbEndpoint_EndpointName{EndpointName: "e"}
		},
	} {
		cla := base()
		change(cla)
		if claPlain(cla) {
			t.Errorf("%s: taken as plain", name)
		}
		got, err := encodeCLA(cla)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, _ := encode("c", cla)
		if !bytes.Equal(got.Wire, want.Wire) {
			t.Errorf("%s: not the bytes protobuf-go writes", name)
		}
	}
}
