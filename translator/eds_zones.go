package translator

import (
	"net/netip"
	"slices"
	"strconv"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

// FailoverThresholdAnnotation sets, in percent (0–100), the healthy share
// of a client's zone below which that zone's clients stop preferring it.
const FailoverThresholdAnnotation = "switchboard.io/failover-threshold"

// DefaultFailoverThreshold is the failover threshold, in percent, when the
// annotation is not set.
const DefaultFailoverThreshold = 50

// zoneCLA is a zone variant of an assignment (model.Variant with
// View.Zone set, before it is encoded): the ClusterLoadAssignment that
// clients in Zone get in place of the Service port's plain one, when the
// Service prefers close endpoints. It carries the same cluster name.
//
// gRPC clients do no overprovisioning (they send the client feature
// envoy.lb.does_not_support_overprovisioning): they move to priority 1 only
// when priority 0 has no ready endpoint at all. So Switchboard fails over on
// the server: a zone whose healthy share drops below the threshold gets no
// zone variant, and its clients get the plain assignment, every ready
// endpoint at priority 0.
type zoneCLA struct {
	Zone       string
	Assignment *endpointv3.ClusterLoadAssignment
}

// failoverThreshold reads FailoverThresholdAnnotation.
func failoverThreshold(svc *model.Service) (int, string) {
	v, ok := svc.Annotations[FailoverThresholdAnnotation]
	if !ok {
		return DefaultFailoverThreshold, ""
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 100 {
		return DefaultFailoverThreshold, FailoverThresholdAnnotation + " " + strconv.Quote(v) +
			": want a whole percentage from 0 to 100; using " + strconv.Itoa(DefaultFailoverThreshold)
	}
	return n, ""
}

// preference says how a Service port's traffic prefers close endpoints:
// not at all, by the zone of each endpoint, or by the EndpointSlice
// controller's topology hints (hints.forZones).
type preference int

const (
	preferNone preference = iota
	preferZone
	preferHints
)

// topologyPreference follows kube-proxy: hints are used when every ready
// endpoint has them (a partly hinted slice is ignored, as kube-proxy does);
// otherwise spec.trafficDistribution PreferClose or PreferSameZone prefers
// the endpoint's own zone. PreferSameNode is read as PreferSameZone: a
// proxyless client's node is not known to the server.
func topologyPreference(svc *model.Service, eps []model.Endpoint) preference {
	hinted, ready := 0, 0
	for i := range eps {
		if eps[i].Ready {
			ready++
			if len(eps[i].ForZones) > 0 {
				hinted++
			}
		}
	}
	if ready > 0 && hinted == ready {
		return preferHints
	}
	switch svc.TrafficDistribution {
	case "PreferClose", "PreferSameZone", "PreferSameNode":
		return preferZone
	}
	return preferNone
}

// zoneAssignments returns, for each zone that has endpoints, the
// assignment its clients get: endpoints close to the zone at priority 0,
// the others at priority 1. A zone whose healthy share (ready endpoints
// over endpoints that are not terminating) is below threshold percent gets
// none, so its clients use base, which holds every ready endpoint at
// priority 0. base is the port's plain assignment; its endpoint messages
// are shared, not copied.
func zoneAssignments(pref preference, eps []model.Endpoint, base *endpointv3.ClusterLoadAssignment, threshold int) []zoneCLA {
	if pref == preferNone || len(base.GetEndpoints()) == 0 {
		return nil
	}
	type counts struct{ ready, total int }
	perZone := map[string]*counts{}
	var hints map[netip.AddrPort][]string
	if pref == preferHints {
		hints = make(map[netip.AddrPort][]string, len(eps))
	}
	for i := range eps {
		e := &eps[i]
		if hints != nil && len(e.Addresses) > 0 {
			if ip, err := netip.ParseAddr(e.Addresses[0]); err == nil {
				hints[netip.AddrPortFrom(ip, uint16(e.Port))] = e.ForZones
			}
		}
		if e.Zone == "" || (e.Terminating && !e.Ready) {
			continue
		}
		c := perZone[e.Zone]
		if c == nil {
			c = &counts{}
			perZone[e.Zone] = c
		}
		c.total++
		if e.Ready {
			c.ready++
		}
	}
	zones := make([]string, 0, len(perZone))
	for z := range perZone {
		zones = append(zones, z)
	}
	slices.Sort(zones)

	var out []zoneCLA
	for _, zone := range zones {
		c := perZone[zone]
		// Integer form of ready/total < threshold%, so the edge is exact.
		if c.ready == 0 || c.ready*100 < threshold*c.total {
			continue
		}
		near := func(loc *endpointv3.LocalityLbEndpoints, lb *endpointv3.LbEndpoint) bool {
			if hints == nil {
				return loc.GetLocality().GetZone() == zone
			}
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			ip, err := netip.ParseAddr(sa.GetAddress())
			if err != nil {
				return false
			}
			return slices.Contains(hints[netip.AddrPortFrom(ip, uint16(sa.GetPortValue()))], zone)
		}
		var p0, p1 []*endpointv3.LocalityLbEndpoints
		for _, loc := range base.GetEndpoints() {
			var in, rest []*endpointv3.LbEndpoint
			for _, lb := range loc.GetLbEndpoints() {
				if near(loc, lb) {
					in = append(in, lb)
				} else {
					rest = append(rest, lb)
				}
			}
			p0 = appendLocality(p0, loc, in, 0)
			p1 = appendLocality(p1, loc, rest, 1)
		}
		if len(p0) == 0 {
			continue
		}
		out = append(out, zoneCLA{Zone: zone, Assignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: base.GetClusterName(),
			Endpoints:   append(p0, p1...),
		}})
	}
	return out
}

// appendLocality adds a copy of loc holding lbs at priority, weighted by
// their number, unless lbs is empty.
func appendLocality(dst []*endpointv3.LocalityLbEndpoints, loc *endpointv3.LocalityLbEndpoints, lbs []*endpointv3.LbEndpoint, priority uint32) []*endpointv3.LocalityLbEndpoints {
	if len(lbs) == 0 {
		return dst
	}
	return append(dst, &endpointv3.LocalityLbEndpoints{
		Locality:            loc.GetLocality(),
		LbEndpoints:         lbs,
		LoadBalancingWeight: wrapperspb.UInt32(uint32(len(lbs))),
		Priority:            priority,
	})
}
