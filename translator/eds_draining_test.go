package translator

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

// checkEnvoyRules fails t for every ClassAssignment in res that breaks the
// contract of ClassAssignment (see envoyRuleErrors).
func checkEnvoyRules(t testing.TB, res decoded) {
	t.Helper()
	for _, err := range envoyRuleErrors(res) {
		t.Error(err)
	}
}

// envoyRuleErrors checks the class assignments of res: only model.ClassEnvoy has
// them; each replaces an assignment that exists (the plain one, or the
// zone's variant) and, with its DRAINING endpoints taken out, is that
// assignment exactly (so Envoy and gRPC see the same HEALTHY endpoints,
// localities, priorities and weights); it has a DRAINING endpoint (else it
// should not exist); each locality has endpoints, is weighted by its
// HEALTHY endpoints (unset when none, as Envoy requires at least 1 when
// set), and an (address, port) pair appears once. A zoned variant exists
// for every zone variant of a cluster with an un-zoned one, and only then.
func envoyRuleErrors(res decoded) []error {
	var errs []error
	plain := map[string]*endpointv3.ClusterLoadAssignment{}
	for _, a := range res.Assignments {
		plain[a.GetClusterName()] = a
	}
	zoned := map[[2]string]*endpointv3.ClusterLoadAssignment{}
	for _, za := range res.ZoneAssignments {
		zoned[[2]string{za.Assignment.GetClusterName(), za.Zone}] = za.Assignment
	}
	have := map[[2]string]bool{}
	for _, ca := range res.ClassAssignments {
		name := ca.Assignment.GetClusterName()
		have[[2]string{name, ca.Zone}] = true
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("class %s zone %q assignment %q: %s", ca.Class, ca.Zone, name, fmt.Sprintf(format, args...)))
		}
		if ca.Class != model.ClassEnvoy {
			fail("only %s gets assignment variants", model.ClassEnvoy)
		}
		base := plain[name]
		if ca.Zone != "" {
			base = zoned[[2]string{name, ca.Zone}]
		}
		if base == nil {
			fail("replaces no assignment")
			continue
		}
		if err := envoyEDS(ca.Assignment); err != nil {
			fail("%v", err)
		}
		if d := cmp.Diff(base, withoutDraining(ca.Assignment), protocmp.Transform()); d != "" {
			fail("without its DRAINING endpoints it differs from the assignment it replaces (-replaced +stripped):\n%s", d)
		}
	}
	for key := range zoned {
		if have[[2]string{key[0], ""}] && !have[key] {
			errs = append(errs, fmt.Errorf("assignment %q: zone %s has a variant and Envoy has one, but there is no Envoy variant for the zone", key[0], key[1]))
		}
	}
	for key := range have {
		if key[1] != "" && !have[[2]string{key[0], ""}] {
			errs = append(errs, fmt.Errorf("assignment %q: an Envoy variant for zone %s without an un-zoned one", key[0], key[1]))
		}
	}
	return errs
}

// envoyEDS checks one Envoy assignment on its own.
func envoyEDS(cla *endpointv3.ClusterLoadAssignment) error {
	drainingSeen := false
	unique := map[netip.AddrPort]bool{}
	for _, l := range cla.GetEndpoints() {
		if len(l.GetLbEndpoints()) == 0 {
			return fmt.Errorf("locality %v has no endpoints", l.GetLocality())
		}
		healthy := 0
		for _, lb := range l.GetLbEndpoints() {
			switch lb.GetHealthStatus() {
			case corev3.HealthStatus_HEALTHY:
				healthy++
			case corev3.HealthStatus_DRAINING:
				drainingSeen = true
			default:
				return fmt.Errorf("endpoint health %v", lb.GetHealthStatus())
			}
			addrs := []*corev3.Address{lb.GetEndpoint().GetAddress()}
			for _, a := range lb.GetEndpoint().GetAdditionalAddresses() {
				addrs = append(addrs, a.GetAddress())
			}
			for _, a := range addrs {
				sa := a.GetSocketAddress()
				ip, err := netip.ParseAddr(sa.GetAddress())
				if err != nil {
					return err
				}
				ap := netip.AddrPortFrom(ip, uint16(sa.GetPortValue()))
				if unique[ap] {
					return fmt.Errorf("duplicate endpoint %s", ap)
				}
				unique[ap] = true
			}
		}
		switch w := l.GetLoadBalancingWeight(); {
		case healthy == 0 && w != nil:
			return fmt.Errorf("locality %v has no HEALTHY endpoint but weight %d", l.GetLocality(), w.GetValue())
		case healthy > 0 && w.GetValue() != uint32(healthy):
			return fmt.Errorf("locality %v has %d HEALTHY endpoints but weight %v", l.GetLocality(), healthy, w)
		}
	}
	if !drainingSeen {
		return errors.New("no DRAINING endpoint: the variant should not exist")
	}
	return nil
}

// withoutDraining returns a copy of cla without its DRAINING endpoints and
// without the localities left empty.
func withoutDraining(cla *endpointv3.ClusterLoadAssignment) *endpointv3.ClusterLoadAssignment {
	out := proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
	out.Endpoints = slices.DeleteFunc(out.Endpoints, func(l *endpointv3.LocalityLbEndpoints) bool {
		l.LbEndpoints = slices.DeleteFunc(l.LbEndpoints, func(lb *endpointv3.LbEndpoint) bool {
			return lb.GetHealthStatus() == corev3.HealthStatus_DRAINING
		})
		return len(l.LbEndpoints) == 0
	})
	return out
}

// healthOf maps each served primary address of cla to its health status.
func healthOf(cla *endpointv3.ClusterLoadAssignment) map[string]corev3.HealthStatus {
	out := map[string]corev3.HealthStatus{}
	for _, l := range cla.GetEndpoints() {
		for _, lb := range l.GetLbEndpoints() {
			out[lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = lb.GetHealthStatus()
		}
	}
	return out
}

// envoyView returns the assignment an Envoy client in zone gets for the
// one port of res, as the server picks it: the zoned class variant, the
// zone variant, the class variant, then the plain assignment.
func envoyView(res decoded, zone string) *endpointv3.ClusterLoadAssignment {
	if zone != "" {
		for _, ca := range res.ClassAssignments {
			if ca.Class == model.ClassEnvoy && ca.Zone == zone {
				return ca.Assignment
			}
		}
		for _, za := range res.ZoneAssignments {
			if za.Zone == zone {
				return za.Assignment
			}
		}
	}
	for _, ca := range res.ClassAssignments {
		if ca.Class == model.ClassEnvoy && ca.Zone == "" {
			return ca.Assignment
		}
	}
	return res.Assignments[0]
}

// TestEnvoyDraining checks what each endpoint condition becomes for Envoy
// and for gRPC clients, and that gRPC's output is what it was before
// Envoy variants existed: the translation without the serving, terminating
// endpoints.
func TestEnvoyDraining(t *testing.T) {
	ep := func(addr, zone string, ready, serving, terminating bool) model.Endpoint {
		return model.Endpoint{Addresses: []string{addr}, Port: 80, Ready: ready, Serving: serving, Terminating: terminating, Zone: zone}
	}
	const (
		healthy  = corev3.HealthStatus_HEALTHY
		draining = corev3.HealthStatus_DRAINING
	)
	for _, tc := range []struct {
		name        string
		eps         []model.Endpoint
		grpc, envoy map[string]corev3.HealthStatus // nil envoy: no variant
	}{
		{
			name: "rollout",
			eps: []model.Endpoint{
				ep("10.0.0.1", "z1", true, true, false),   // ready
				ep("10.0.0.2", "z1", false, true, true),   // serving, terminating
				ep("10.0.0.3", "z2", false, true, true),   // serving, terminating, alone in z2
				ep("10.0.0.4", "z1", false, false, true),  // terminating, no longer serving
				ep("10.0.0.5", "z1", false, false, false), // starting
				ep("10.0.0.6", "z1", false, true, false),  // serving but not ready, not terminating
			},
			grpc:  map[string]corev3.HealthStatus{"10.0.0.1": healthy},
			envoy: map[string]corev3.HealthStatus{"10.0.0.1": healthy, "10.0.0.2": draining, "10.0.0.3": draining},
		},
		{
			name: "no terminating endpoint: no variant",
			eps: []model.Endpoint{
				ep("10.0.0.1", "z1", true, true, false),
				ep("10.0.0.4", "z1", false, false, true),
			},
			grpc: map[string]corev3.HealthStatus{"10.0.0.1": healthy},
		},
		{
			name: "fallback: no ready endpoint, Envoy gets the plain HEALTHY ones",
			eps: []model.Endpoint{
				ep("10.0.0.2", "z1", false, true, true),
				ep("10.0.0.3", "z2", false, true, true),
			},
			grpc: map[string]corev3.HealthStatus{"10.0.0.2": healthy, "10.0.0.3": healthy},
		},
		{
			name: "a terminating endpoint that repeats a ready address is dropped",
			eps: []model.Endpoint{
				{Addresses: []string{"10.0.0.1", "fd00::1"}, Port: 80, Ready: true, Serving: true, Zone: "z1"},
				{Addresses: []string{"FD00::1"}, Port: 80, Serving: true, Terminating: true, Zone: "z2"},
			},
			grpc: map[string]corev3.HealthStatus{"10.0.0.1": healthy},
		},
		{
			name: "an invalid terminating endpoint is left out",
			eps: []model.Endpoint{
				ep("10.0.0.1", "z1", true, true, false),
				ep("bogus", "z1", false, true, true),
			},
			grpc: map[string]corev3.HealthStatus{"10.0.0.1": healthy},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &model.Service{
				Key:        model.ServiceKey{Namespace: "n", Name: "s"},
				SliceCount: 1,
				Ports:      []model.Port{{Name: "grpc", Port: 80, Endpoints: tc.eps}},
			}
			res, _ := translate(t, Options{}, svc)
			validateAll(t, res)
			checkGRPCRules(t, res)
			checkEnvoyRules(t, res)
			if d := cmp.Diff(tc.grpc, healthOf(res.Assignments[0])); d != "" {
				t.Errorf("gRPC endpoints (-want +got):\n%s", d)
			}
			if tc.envoy == nil {
				if len(res.ClassAssignments) != 0 {
					t.Errorf("class assignments %v, want none", res.ClassAssignments)
				}
			} else if d := cmp.Diff(tc.envoy, healthOf(envoyView(res, ""))); d != "" {
				t.Errorf("Envoy endpoints (-want +got):\n%s", d)
			}

			// gRPC output is unchanged by the serving, terminating
			// endpoints when ready ones exist.
			if tc.envoy != nil {
				without := *svc
				without.Ports = []model.Port{{Name: "grpc", Port: 80, Endpoints: slices.DeleteFunc(slices.Clone(tc.eps), func(e model.Endpoint) bool { return isDraining(&e) })}}
				want, _ := translate(t, Options{}, &without)
				if d := cmp.Diff(want.Assignments, res.Assignments, protocmp.Transform()); d != "" {
					t.Errorf("gRPC assignment changed by terminating endpoints (-without +with):\n%s", d)
				}
			}
		})
	}
}

// TestEnvoyDrainingWeights checks the locality weights Envoy gets: the
// HEALTHY endpoints only, and none for a locality of DRAINING endpoints.
func TestEnvoyDrainingWeights(t *testing.T) {
	eps := []model.Endpoint{
		{Addresses: []string{"10.0.0.1"}, Port: 80, Ready: true, Serving: true, Zone: "z1"},
		{Addresses: []string{"10.0.0.2"}, Port: 80, Ready: true, Serving: true, Zone: "z1"},
		{Addresses: []string{"10.0.0.3"}, Port: 80, Serving: true, Terminating: true, Zone: "z1"},
		{Addresses: []string{"10.0.0.4"}, Port: 80, Serving: true, Terminating: true, Zone: "z2"},
		{Addresses: []string{"10.0.0.5"}, Port: 80, Serving: true, Terminating: true},
	}
	res, _ := translate(t, Options{}, &model.Service{
		Key: model.ServiceKey{Namespace: "n", Name: "s"}, SliceCount: 1,
		Ports: []model.Port{{Name: "grpc", Port: 80, Endpoints: eps}},
	})
	got := envoyView(res, "")
	type loc struct {
		zone, subZone string
		weight        *wrapperspb.UInt32Value
		n             int
	}
	var locs []loc
	for _, l := range got.GetEndpoints() {
		locs = append(locs, loc{l.GetLocality().GetZone(), l.GetLocality().GetSubZone(), l.GetLoadBalancingWeight(), len(l.GetLbEndpoints())})
	}
	want := []loc{
		{"", ZonelessSubZone, nil, 1},
		{"z1", "", wrapperspb.UInt32(2), 3},
		{"z2", "", nil, 1},
	}
	if d := cmp.Diff(want, locs, cmp.AllowUnexported(loc{}), protocmp.Transform()); d != "" {
		t.Errorf("Envoy localities (-want +got):\n%s", d)
	}
}

// TestEnvoyZoned checks the composite view: a zoned Envoy client keeps its
// zone preference during a rollout, with the DRAINING endpoints at the
// priority their zone gives them; a zone that failed over gets none.
func TestEnvoyZoned(t *testing.T) {
	ep := func(addr, zone string, ready bool) model.Endpoint {
		return model.Endpoint{Addresses: []string{addr}, Port: 80, Ready: ready, Serving: true, Terminating: !ready, Zone: zone}
	}
	svc := &model.Service{
		Key: model.ServiceKey{Namespace: "n", Name: "s"}, SliceCount: 1, TrafficDistribution: "PreferClose",
		Ports: []model.Port{{Name: "grpc", Port: 80, Endpoints: []model.Endpoint{
			ep("10.0.1.1", "z1", true), ep("10.0.1.2", "z1", true), ep("10.0.1.3", "z1", false),
			ep("10.0.2.1", "z2", true), ep("10.0.2.2", "z2", false),
		}}},
	}
	res, _ := translate(t, Options{}, svc)
	validateAll(t, res)
	checkGRPCRules(t, res)
	checkEnvoyRules(t, res)
	var views []string
	for _, ca := range res.ClassAssignments {
		views = append(views, ca.Class+"/"+ca.Zone)
	}
	if d := cmp.Diff([]string{"envoy/", "envoy/z1", "envoy/z2"}, views); d != "" {
		t.Fatalf("class views (-want +got):\n%s", d)
	}
	type entry struct {
		addr     string
		priority uint32
		health   corev3.HealthStatus
	}
	var got []entry
	for _, l := range envoyView(res, "z1").GetEndpoints() {
		for _, lb := range l.GetLbEndpoints() {
			got = append(got, entry{lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress(), l.GetPriority(), lb.GetHealthStatus()})
		}
	}
	want := []entry{
		{"10.0.1.1", 0, corev3.HealthStatus_HEALTHY},
		{"10.0.1.2", 0, corev3.HealthStatus_HEALTHY},
		{"10.0.1.3", 0, corev3.HealthStatus_DRAINING},
		{"10.0.2.1", 1, corev3.HealthStatus_HEALTHY},
		{"10.0.2.2", 1, corev3.HealthStatus_DRAINING},
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(entry{})); d != "" {
		t.Errorf("z1 Envoy view (-want +got):\n%s", d)
	}

	// z1 fails over (1 ready of 3 not terminating): no z1 variant for
	// anyone, so z1's Envoy clients get the un-zoned Envoy variant.
	svc.Ports[0].Endpoints = append(svc.Ports[0].Endpoints,
		model.Endpoint{Addresses: []string{"10.0.1.4"}, Port: 80, Zone: "z1"},
		model.Endpoint{Addresses: []string{"10.0.1.5"}, Port: 80, Zone: "z1"},
		model.Endpoint{Addresses: []string{"10.0.1.6"}, Port: 80, Zone: "z1"},
	)
	res, _ = translate(t, Options{}, svc)
	checkEnvoyRules(t, res)
	views = views[:0]
	for _, ca := range res.ClassAssignments {
		views = append(views, ca.Class+"/"+ca.Zone)
	}
	if d := cmp.Diff([]string{"envoy/", "envoy/z2"}, views); d != "" {
		t.Errorf("after z1 failed over, class views (-want +got):\n%s", d)
	}
	if envoyView(res, "z1") != res.ClassAssignments[0].Assignment {
		t.Error("z1 Envoy client does not get the un-zoned Envoy variant")
	}
}

// TestEnvoyRulesCatch checks that envoyRuleErrors rejects broken variants,
// so a passing golden run means something.
func TestEnvoyRulesCatch(t *testing.T) {
	ep := func(addr, zone string, ready bool) model.Endpoint {
		return model.Endpoint{Addresses: []string{addr}, Port: 80, Ready: ready, Serving: true, Terminating: !ready, Zone: zone}
	}
	svc := &model.Service{
		Key: model.ServiceKey{Namespace: "n", Name: "s"}, SliceCount: 1, TrafficDistribution: "PreferClose",
		Ports: []model.Port{{Name: "grpc", Port: 80, Endpoints: []model.Endpoint{
			ep("10.0.1.1", "z1", true), ep("10.0.1.3", "z1", false), ep("10.0.2.1", "z2", true),
		}}},
	}
	fresh := func() decoded {
		res, _ := translate(t, Options{}, svc)
		return res
	}
	if errs := envoyRuleErrors(fresh()); len(errs) != 0 {
		t.Fatalf("valid resources rejected: %v", errs)
	}
	first := func(r *decoded) *endpointv3.LocalityLbEndpoints {
		return r.ClassAssignments[0].Assignment.GetEndpoints()[0]
	}
	for _, tc := range []struct {
		name   string
		mutate func(r *decoded)
	}{
		{"weight counts DRAINING", func(r *decoded) { first(r).LoadBalancingWeight = wrapperspb.UInt32(2) }},
		{"gRPC class", func(r *decoded) { r.ClassAssignments[0].Class = model.ClassCCore }},
		{"no DRAINING", func(r *decoded) {
			for _, ca := range r.ClassAssignments {
				for _, l := range ca.Assignment.GetEndpoints() {
					l.LbEndpoints = slices.DeleteFunc(l.LbEndpoints, func(lb *endpointv3.LbEndpoint) bool {
						return lb.GetHealthStatus() == corev3.HealthStatus_DRAINING
					})
				}
			}
		}},
		{"HEALTHY endpoint missing", func(r *decoded) { first(r).LbEndpoints = first(r).LbEndpoints[1:] }},
		{"zoned variant missing", func(r *decoded) { r.ClassAssignments = r.ClassAssignments[:1] }},
		{"unknown health", func(r *decoded) {
			first(r).LbEndpoints[1] = proto.Clone(first(r).LbEndpoints[1]).(*endpointv3.LbEndpoint)
			first(r).LbEndpoints[1].HealthStatus = corev3.HealthStatus_UNHEALTHY
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := fresh()
			tc.mutate(&r)
			if errs := envoyRuleErrors(r); len(errs) == 0 {
				t.Error("not caught")
			}
		})
	}
}
