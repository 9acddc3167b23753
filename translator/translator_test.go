package translator

import (
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

func TestCanonicalName(t *testing.T) {
	key := model.ServiceKey{Namespace: "demo", Name: "greeter"}
	for _, tc := range []struct {
		domain string
		port   int32
		want   string
	}{
		{"cluster.local", 50051, "greeter.demo.svc.cluster.local:50051"},
		{"", 80, "greeter.demo.svc.cluster.local:80"},
		{"corp.example", 443, "greeter.demo.svc.corp.example:443"},
	} {
		if got := CanonicalName(tc.domain, key, tc.port); got != tc.want {
			t.Errorf("CanonicalName(%q, %v, %d) = %q, want %q", tc.domain, key, tc.port, got, tc.want)
		}
	}
}

func TestAliases(t *testing.T) {
	key := model.ServiceKey{Namespace: "n", Name: "s"}
	single := map[string]string{
		"s.n": "s.n.svc.cluster.local:80", "s.n.svc": "s.n.svc.cluster.local:80",
		"s.n.svc.cluster.local": "s.n.svc.cluster.local:80",
		"s.n:80":                "s.n.svc.cluster.local:80", "s.n.svc:80": "s.n.svc.cluster.local:80",
	}
	multi := map[string]string{
		"s.n:80": "s.n.svc.cluster.local:80", "s.n.svc:80": "s.n.svc.cluster.local:80",
		"s.n:81": "s.n.svc.cluster.local:81", "s.n.svc:81": "s.n.svc.cluster.local:81",
	}
	for _, tc := range []struct {
		name  string
		ports []model.Port
		want  map[string]string
	}{
		{"single", []model.Port{{Name: "a", Port: 80}}, single},
		{"multi", []model.Port{{Name: "a", Port: 80}, {Name: "b", Port: 81}}, multi},
		// Only translated ports count: a UDP port does not stop "s.n".
		{"tcp and udp", []model.Port{{Name: "a", Port: 80}, {Name: "u", Port: 81, Protocol: "UDP"}}, single},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := translate(t, Options{}, &model.Service{Key: key, Ports: tc.ports, SliceCount: 1})
			if d := cmp.Diff(tc.want, res.Aliases); d != "" {
				t.Errorf("aliases (-want +got):\n%s", d)
			}
			// Every alias is a domain of its canonical route, and no alias is
			// a canonical name.
			for alias, canonical := range res.Aliases {
				if strings.Count(alias, ".") > 2 && strings.Contains(alias, ":") {
					t.Errorf("alias %q looks canonical", alias)
				}
				for _, rc := range res.Routes {
					if rc.GetName() == canonical && !slices.Contains(rc.GetVirtualHosts()[0].GetDomains(), alias) {
						t.Errorf("route %q lacks domain %q", canonical, alias)
					}
				}
			}
		})
	}
}

// TestAliasListener checks that an alias listener is the canonical listener
// under another name.
func TestAliasListener(t *testing.T) {
	res, diags := translateFile(t, filepath.Join("testdata", "in", "single-port-zones.yaml"))
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	r := res[model.ServiceKey{Namespace: "demo", Name: "greeter"}]
	canonical := r.Listeners[0]
	if len(r.Aliases) != 5 {
		t.Fatalf("got %d aliases, want 5: %v", len(r.Aliases), r.Aliases)
	}
	for alias, target := range r.Aliases {
		got := apiListener(alias, target)
		want := proto.Clone(canonical).(*listenerv3.Listener)
		want.Name = alias
		if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
			t.Errorf("AliasListener(%q) (-want +got):\n%s", alias, d)
		}
	}
}

// TestFallbackToTerminating covers kube-proxy's fallback and its limits.
func TestFallbackToTerminating(t *testing.T) {
	ep := func(addr string, ready, serving, terminating bool) model.Endpoint {
		return model.Endpoint{Addresses: []string{addr}, Port: 80, Ready: ready, Serving: serving, Terminating: terminating, Zone: "z"}
	}
	for _, tc := range []struct {
		name string
		eps  []model.Endpoint
		want []string
	}{
		{"ready wins", []model.Endpoint{ep("10.0.0.1", true, true, false), ep("10.0.0.2", false, true, true)}, []string{"10.0.0.1"}},
		{"fallback", []model.Endpoint{ep("10.0.0.2", false, true, true), ep("10.0.0.3", false, false, true)}, []string{"10.0.0.2"}},
		{"not serving is never used", []model.Endpoint{ep("10.0.0.3", false, false, true), ep("10.0.0.4", false, false, false)}, nil},
		{"serving but not terminating is not the fallback", []model.Endpoint{ep("10.0.0.5", false, true, false)}, nil},
		{"bad ready endpoint falls back", []model.Endpoint{ep("bogus", true, true, false), ep("10.0.0.2", false, true, true)}, []string{"10.0.0.2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cla, _ := loadAssignment("c", model.ServiceKey{}, "p", tc.eps)
			if d := cmp.Diff(tc.want, claAddrs(cla)); d != "" {
				t.Errorf("served (-want +got):\n%s", d)
			}
			if err := grpcEDS(cla); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestDuplicateAddresses checks that an (address, port) pair is served once
// per assignment, also when it appears as an additional address, and that
// the same address on another port is not a duplicate.
func TestDuplicateAddresses(t *testing.T) {
	eps := []model.Endpoint{
		{Addresses: []string{"10.0.0.1", "fd00::1"}, Port: 80, Ready: true, Zone: "a"},
		{Addresses: []string{"10.0.0.1"}, Port: 80, Ready: true, Zone: "b"},            // same as the first: dropped
		{Addresses: []string{"10.0.0.1"}, Port: 81, Ready: true, Zone: "b"},            // other port: kept
		{Addresses: []string{"fd00::1", "10.0.0.9"}, Port: 80, Ready: true, Zone: "b"}, // fd00::1 dropped, 10.0.0.9 kept
		{Addresses: []string{"FD00:0::1"}, Port: 80, Ready: true, Zone: "c"},           // fd00::1 spelled differently: dropped
	}
	cla, diags := loadAssignment("c", model.ServiceKey{}, "p", eps)
	if len(diags) != 0 {
		t.Errorf("diagnostics: %v", diags)
	}
	want := []string{"10.0.0.1", "fd00::1", "10.0.0.1:81", "10.0.0.9"}
	if d := cmp.Diff(want, claAddrs(cla)); d != "" {
		t.Errorf("served (-want +got):\n%s", d)
	}
	if err := grpcEDS(cla); err != nil {
		t.Error(err)
	}
}

// TestInvalidInputIsolated checks that broken Services, ports and endpoints
// never change what a valid Service translates to, and never panic.
func TestInvalidInputIsolated(t *testing.T) {
	good := &model.Service{
		Key:        model.ServiceKey{Namespace: "ok", Name: "good"},
		Ports:      []model.Port{{Name: "grpc", Port: 80, Endpoints: []model.Endpoint{{Addresses: []string{"10.0.0.1"}, Port: 8080, Ready: true}}}},
		SliceCount: 1,
	}
	alone, _ := translateAll(t, Options{}, []*model.Service{good})
	bad := []*model.Service{
		nil,
		{},
		{Key: model.ServiceKey{Namespace: "ok", Name: "UPPER"}, SliceCount: 1, Ports: []model.Port{{Port: 80}}},
		{Key: model.ServiceKey{Namespace: "ok", Name: "weird"}, Type: "Magic", SliceCount: 1, Ports: []model.Port{{Port: 80}}},
		{Key: model.ServiceKey{Namespace: "ok", Name: "ports"}, SliceCount: 3, Ports: []model.Port{
			{Port: -1},
			{Port: 70000},
			{Name: "x", Port: 1, Protocol: "QUIC"},
			{Name: "e", Port: 2, Endpoints: []model.Endpoint{
				{Ready: true, Port: 1},
				{Addresses: []string{"10.0.0.2"}, Port: 0, Ready: true},
				{Addresses: []string{"10.0.0.3"}, Port: 65536, Ready: true},
				{Addresses: []string{"10.0.0.4", "nope"}, Port: 1, Ready: true},
				{Addresses: []string{"\xff"}, Port: 1, Ready: true},
			}},
		}},
		{Key: model.ServiceKey{Namespace: "ok", Name: "dup"}, SliceCount: 1, Ports: []model.Port{{Port: 1}}},
		{Key: model.ServiceKey{Namespace: "ok", Name: "dup"}, SliceCount: 1, Ports: []model.Port{{Port: 2}}},
		{Key: model.ServiceKey{Namespace: "ok", Name: "noports"}, SliceCount: 1},
	}
	got, diags := translateAll(t, Options{}, append(bad, good))
	if d := cmp.Diff(alone[good.Key], got[good.Key], protocmp.Transform()); d != "" {
		t.Errorf("good Service changed by its neighbours (-alone +with):\n%s", d)
	}
	for _, d := range diags {
		if d.Service == good.Key {
			t.Errorf("diagnostic on the good Service: %v", d)
		}
	}
	if len(diags) < len(bad) {
		t.Errorf("got %d diagnostics for %d bad Services: %v", len(diags), len(bad), diags)
	}
	for key, res := range got {
		validateAll(t, res)
		if errs := grpcRuleErrors(res); len(errs) != 0 {
			t.Errorf("%v: %v", key, errs)
		}
	}
	// Port "e" has slices but no usable endpoint: it is served, empty.
	ports := got[model.ServiceKey{Namespace: "ok", Name: "ports"}]
	if len(ports.Assignments) != 1 || len(ports.Assignments[0].GetEndpoints()) != 0 {
		t.Errorf("port e: want one empty assignment, got %v", ports.Assignments)
	}
	// Options are checked too.
	if _, diags := Service(Options{ClusterDomain: "Bad Domain"}, good); len(diags) != 1 {
		t.Errorf("invalid domain: got %v, want one diagnostic", diags)
	}
	if err := (Options{ClusterDomain: "cluster.local."}).Validate(); err == nil {
		t.Error("trailing dot accepted")
	}
}

// TestDeterminism translates the golden inputs twice, once in shuffled
// order with shuffled endpoints, and wants byte-identical deterministic
// marshalling of every resource, and the same diagnostics.
func TestDeterminism(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var views []*model.Service
	for _, in := range inputs {
		views = append(views, loadViews(t, in)...)
	}
	views = append(views, benchServices(t, 20, 30)...)
	first, firstDiags := all(goldenOptions, views)

	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 3 {
		shuffled := make([]*model.Service, len(views))
		for i, v := range views {
			c := *v
			c.Ports = slices.Clone(v.Ports)
			for j := range c.Ports {
				c.Ports[j].Endpoints = slices.Clone(c.Ports[j].Endpoints)
				rng.Shuffle(len(c.Ports[j].Endpoints), func(a, b int) {
					c.Ports[j].Endpoints[a], c.Ports[j].Endpoints[b] = c.Ports[j].Endpoints[b], c.Ports[j].Endpoints[a]
				})
			}
			shuffled[i] = &c
		}
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		again, diags := all(goldenOptions, shuffled)
		if d := cmp.Diff(firstDiags, diags); d != "" {
			t.Errorf("round %d: diagnostics differ (-first +again):\n%s", round, d)
		}
		if len(again) != len(first) {
			t.Fatalf("round %d: %d Services, want %d", round, len(again), len(first))
		}
		for key, want := range first {
			if a, b := marshalAll(want), marshalAll(again[key]); !slices.EqualFunc(a, b, slices.Equal) {
				t.Errorf("round %d: %v: resources differ", round, key)
			}
			if d := cmp.Diff(want.Aliases, again[key].Aliases); d != "" {
				t.Errorf("round %d: %v: aliases differ:\n%s", round, key, d)
			}
		}
	}
}

// TestGRPCRulesCatch checks that the checker itself rejects what grpc-go
// rejects, so a passing golden run means something.
func TestGRPCRulesCatch(t *testing.T) {
	base, _ := translate(t, Options{}, benchServices(t, 1, 3)[0])
	if errs := grpcRuleErrors(base); len(errs) != 0 {
		t.Fatalf("valid resources rejected: %v", errs)
	}
	for _, tc := range []struct {
		name   string
		mutate func(r *decoded)
	}{
		{"locality without weight", func(r *decoded) { r.Assignments[0].Endpoints[0].LoadBalancingWeight = nil }},
		{"locality nil", func(r *decoded) { r.Assignments[0].Endpoints[0].Locality = nil }},
		{"priority gap", func(r *decoded) { r.Assignments[0].Endpoints[0].Priority = 2 }},
		{"zero endpoint weight", func(r *decoded) {
			r.Assignments[0].Endpoints[0].LbEndpoints[0].LoadBalancingWeight = wrapperspb.UInt32(0)
		}},
		{"duplicate address", func(r *decoded) {
			l := r.Assignments[0].Endpoints[0]
			l.LbEndpoints = append(l.LbEndpoints, proto.Clone(l.LbEndpoints[0]).(*endpointv3.LbEndpoint))
		}},
		{"draining endpoint", func(r *decoded) {
			r.Assignments[0].Endpoints[0].LbEndpoints[0].HealthStatus = corev3.HealthStatus_DRAINING
		}},
		{"no router", func(r *decoded) { r.Listeners[0] = apiListenerWithoutFilters(r.Listeners[0]) }},
		{"eds not ads", func(r *decoded) {
			r.Clusters[0].EdsClusterConfig.EdsConfig = &corev3.ConfigSource{
				ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: "/x"}, //nolint:staticcheck // the deprecated path source is what gRPC rejects here
			}
		}},
		{"no matching virtual host", func(r *decoded) { r.Routes[0].VirtualHosts[0].Domains = []string{"other"} }},
		{"missing assignment", func(r *decoded) { r.Assignments = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cloneResources(base)
			tc.mutate(&r)
			if errs := grpcRuleErrors(r); len(errs) == 0 {
				t.Error("not caught")
			}
		})
	}
}

// claAddrs lists the served addresses of cla in order, primary then
// additional; ":port" is appended when the port is not 80.
func claAddrs(cla *endpointv3.ClusterLoadAssignment) []string {
	var out []string
	for _, l := range cla.GetEndpoints() {
		for _, lb := range l.GetLbEndpoints() {
			addrs := []*corev3.Address{lb.GetEndpoint().GetAddress()}
			for _, a := range lb.GetEndpoint().GetAdditionalAddresses() {
				addrs = append(addrs, a.GetAddress())
			}
			for _, a := range addrs {
				sa := a.GetSocketAddress()
				s := sa.GetAddress()
				if sa.GetPortValue() != 80 {
					s += ":" + strconv.Itoa(int(sa.GetPortValue()))
				}
				out = append(out, s)
			}
		}
	}
	return out
}

// marshalAll returns the wire form of every resource in res, in order.
func marshalAll(res model.Resources) [][]byte {
	var out [][]byte
	for _, list := range [][]model.Encoded{res.Listeners, res.Routes, res.Clusters, res.Assignments} {
		for _, e := range list {
			out = append(out, e.Wire)
		}
	}
	for _, v := range res.Variants {
		out = append(out, v.Resource.Wire)
	}
	return out
}

// cloneResources deep-copies res.
func cloneResources(res decoded) decoded {
	out := decoded{Aliases: maps.Clone(res.Aliases)}
	for _, m := range res.Listeners {
		out.Listeners = append(out.Listeners, proto.Clone(m).(*listenerv3.Listener))
	}
	for _, m := range res.Routes {
		out.Routes = append(out.Routes, proto.Clone(m).(*routev3.RouteConfiguration))
	}
	for _, m := range res.Clusters {
		out.Clusters = append(out.Clusters, proto.Clone(m).(*clusterv3.Cluster))
	}
	for _, m := range res.Assignments {
		out.Assignments = append(out.Assignments, proto.Clone(m).(*endpointv3.ClusterLoadAssignment))
	}
	return out
}

// apiListenerWithoutFilters returns lis with an empty HTTP filter list, which
// grpc-go and C-core NACK.
func apiListenerWithoutFilters(lis *listenerv3.Listener) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{}
	if err := lis.GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
		panic(err)
	}
	hcm.HttpFilters = nil
	a, err := deterministicAny(hcm)
	if err != nil {
		panic(err)
	}
	return &listenerv3.Listener{Name: lis.GetName(), ApiListener: &listenerv3.ApiListener{ApiListener: a}}
}

// FuzzService feeds arbitrary names, ports and addresses through Service:
// it must never panic, and whatever it returns must pass ValidateAll and
// the gRPC client rules. The seeds run in every `go test`; run
// `go test ./translator -fuzz FuzzService` to search further.
func FuzzService(f *testing.F) {
	f.Add("svc", "ns", "grpc", int32(80), "10.0.0.1", "fd00::1", int32(8080), "z", true, false)
	f.Add("a", "b", "", int32(0), "not-an-ip", "", int32(0), "", false, true)
	f.Add("x", "y", "p", int32(65535), "::ffff:10.0.0.1", "10.0.0.1", int32(65535), "unknown", true, true)
	f.Fuzz(func(t *testing.T, name, ns, portName string, port int32, addr1, addr2 string, epPort int32, zone string, ready, terminating bool) {
		addrs := []string{addr1}
		if addr2 != "" {
			addrs = append(addrs, addr2)
		}
		svc := &model.Service{
			Key:        model.ServiceKey{Namespace: ns, Name: name},
			SliceCount: 1,
			Ports: []model.Port{{Name: portName, Port: port, Endpoints: []model.Endpoint{
				{Addresses: addrs, Port: epPort, Ready: ready, Serving: true, Terminating: terminating, Zone: zone},
				{Addresses: []string{addr2, addr1}, Port: epPort, Ready: !ready, Serving: true, Terminating: true, Zone: zone + "x"},
			}}},
		}
		res, _ := translate(t, Options{}, svc)
		validateAll(t, res)
		checkGRPCRules(t, res)
		checkEnvoyRules(t, res)
	})
}
