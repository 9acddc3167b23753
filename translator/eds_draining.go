package translator

import (
	"net/netip"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

// classCLA is a class variant of an assignment (model.Variant with
// View.Class set, before it is encoded): the ClusterLoadAssignment that
// clients of Class get in place of the one they would get otherwise. It
// carries the same cluster name. With Zone "" it replaces the plain
// assignment; with Zone Z it replaces the zone variant of zone Z, for
// clients of Class in Z, and exists exactly when that zone variant does
// and the un-zoned class variant of the same class and cluster does.
//
// The one class with assignment variants is model.ClassEnvoy: while a port has
// ready endpoints and also serving, terminating ones (a rolling update),
// Envoy gets the terminating ones too, marked DRAINING (see
// drainingAssignment). gRPC clients never get a class variant: they drop
// DRAINING endpoints, and a locality weighted for endpoints a client drops
// skews its picks. A port without such endpoints has no class variant, so
// Envoy clients then get what every other client gets.
type classCLA struct {
	Class      string
	Zone       string
	Assignment *endpointv3.ClusterLoadAssignment
}

// envoyAssignments returns the model.ClassEnvoy variants of one port's
// assignments: base is the plain assignment built from eps, zones its
// per-zone variants (built with pref and threshold). See classCLA.
//
// The zoned variants compose the two views, rather than letting a zoned
// Envoy fall back to the un-zoned variant: the zone preference holds during
// a rollout as before and after it, and Envoy, which does overprovisioning,
// spills from priority 0 on its own. Each is built the way zoneAssignments
// builds the plain one, from the Envoy base, so an endpoint is near or far
// for Envoy exactly when it is for gRPC.
func envoyAssignments(pref preference, eps []model.Endpoint, base *endpointv3.ClusterLoadAssignment, zones []zoneCLA, threshold int) []classCLA {
	plain := drainingAssignment(base, eps)
	if plain == nil {
		return nil
	}
	out := []classCLA{{Class: model.ClassEnvoy, Assignment: plain}}
	if len(zones) == 0 {
		return out
	}
	for _, za := range zoneAssignments(pref, eps, plain, threshold) {
		// The Envoy base holds every endpoint of base, so its zone set is a
		// superset of the plain one; a zone without a plain variant has
		// failed over (or has only draining endpoints close to it) and its
		// Envoy clients get the un-zoned variant.
		if !slices.ContainsFunc(zones, func(z zoneCLA) bool { return z.Zone == za.Zone }) {
			continue
		}
		// zoneAssignments weighs a locality by all its endpoints; Envoy's
		// weights count the HEALTHY ones, as in the un-zoned variant.
		cla := &endpointv3.ClusterLoadAssignment{
			ClusterName: za.Assignment.GetClusterName(),
			Endpoints:   make([]*endpointv3.LocalityLbEndpoints, 0, len(za.Assignment.GetEndpoints())),
		}
		for _, loc := range za.Assignment.GetEndpoints() {
			cla.Endpoints = append(cla.Endpoints, &endpointv3.LocalityLbEndpoints{
				Locality:            loc.GetLocality(),
				LbEndpoints:         loc.GetLbEndpoints(),
				LoadBalancingWeight: healthyWeight(loc.GetLbEndpoints()),
				Priority:            loc.GetPriority(),
			})
		}
		out = append(out, classCLA{Class: model.ClassEnvoy, Zone: za.Zone, Assignment: cla})
	}
	return out
}

// drainingAssignment returns base with the serving, terminating endpoints
// of eps added as DRAINING, or nil when there is nothing to add: no such
// endpoint, none that base does not already serve, or no ready endpoint (then
// base already holds the serving, terminating ones as HEALTHY, kube-proxy's
// fallback, and Envoy must get them the same way: it would send nothing to
// a DRAINING-only cluster outside panic mode).
//
// Envoy (since the runtime guard exclude_host_in_eds_status_draining, on by
// default) excludes a DRAINING host from load balancing and from the
// healthy-share denominators of priority spillover, locality weighting and
// panic mode; its stateful-session filter can still route a session to it
// (override_host_status). So each locality keeps the weight it has in base,
// its number of HEALTHY endpoints, and Envoy splits load between localities
// as gRPC does; a locality with DRAINING endpoints only has no weight (the
// field is optional, and at least 1 when set): Envoy sends it nothing, and
// gRPC never sees it. Endpoints of base are shared, not copied; within a
// locality the HEALTHY ones come first, then the DRAINING ones in address
// order. An (address, port) pair is still served once: a terminating
// endpoint that repeats one of base is dropped.
func drainingAssignment(base *endpointv3.ClusterLoadAssignment, eps []model.Endpoint) *endpointv3.ClusterLoadAssignment {
	// The common case, no endpoint terminating, costs one pass and nothing
	// else.
	n := 0
	for i := range eps {
		if isDraining(&eps[i]) {
			n++
		}
	}
	if n == 0 || len(base.GetEndpoints()) == 0 {
		return nil
	}
	ready := false
	draining := make([]candidate, 0, n)
	var buf []ipAddr
	for i := range eps {
		e := &eps[i]
		switch {
		case e.Ready && !ready:
			_, _, err := validEndpoint(e, nil)
			ready = err == nil
		case isDraining(e):
			// An invalid one was reported by loadAssignment already.
			var c candidate
			var err error
			if c, buf, err = validEndpoint(e, buf); err == nil {
				draining = append(draining, c)
			}
		}
	}
	if !ready || len(draining) == 0 {
		return nil
	}
	if !slices.IsSortedFunc(draining, compareCandidates) {
		slices.SortFunc(draining, compareCandidates)
	}

	kept, extra := dedupAgainst(servedAddrs(base), draining)
	if len(kept) == 0 {
		return nil
	}

	type group struct {
		at                place
		healthy, draining []*endpointv3.LbEndpoint
	}
	groups := make([]*group, 0, len(base.GetEndpoints())+1)
	byPlace := make(map[place]*group, len(base.GetEndpoints())+1)
	for _, loc := range base.GetEndpoints() {
		g := &group{at: placeOf(loc.GetLocality()), healthy: loc.GetLbEndpoints()}
		groups = append(groups, g)
		byPlace[g.at] = g
	}
	alloc := newEndpointAlloc(len(kept), extra)
	for _, c := range kept {
		g := byPlace[c.at]
		if g == nil {
			g = &group{at: c.at}
			groups = append(groups, g)
			byPlace[c.at] = g
		}
		lb := alloc.lbEndpoint(c.addrs[0].s, c.addrs[1:], c.port)
		lb.HealthStatus = corev3.HealthStatus_DRAINING
		g.draining = append(g.draining, lb)
	}
	slices.SortFunc(groups, func(a, b *group) int { return comparePlaces(a.at, b.at) })

	cla := &endpointv3.ClusterLoadAssignment{
		ClusterName: base.GetClusterName(),
		Endpoints:   make([]*endpointv3.LocalityLbEndpoints, 0, len(groups)),
	}
	for _, g := range groups {
		lbs := make([]*endpointv3.LbEndpoint, 0, len(g.healthy)+len(g.draining))
		lbs = append(append(lbs, g.healthy...), g.draining...)
		cla.Endpoints = append(cla.Endpoints, &endpointv3.LocalityLbEndpoints{
			Locality:            locality(g.at),
			LbEndpoints:         lbs,
			LoadBalancingWeight: healthyWeight(lbs),
		})
	}
	return cla
}

// isDraining reports whether e is served to Envoy as DRAINING while the
// port has ready endpoints: serving, terminating and not ready.
func isDraining(e *model.Endpoint) bool {
	return !e.Ready && e.Serving && e.Terminating
}

// healthyWeight is the load_balancing_weight of a locality holding lbs: its
// number of HEALTHY endpoints, or unset when it has none.
func healthyWeight(lbs []*endpointv3.LbEndpoint) *wrapperspb.UInt32Value {
	n := 0
	for _, lb := range lbs {
		if lb.GetHealthStatus() == corev3.HealthStatus_HEALTHY {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return wrapperspb.UInt32(uint32(n))
}

// placeOf inverts locality.
func placeOf(l *corev3.Locality) place {
	return place{region: l.GetRegion(), zone: l.GetZone()}
}

// servedAddrs returns every (address, port) pair that cla serves,
// additional addresses included.
func servedAddrs(cla *endpointv3.ClusterLoadAssignment) map[netip.AddrPort]struct{} {
	seen := map[netip.AddrPort]struct{}{}
	add := func(a *corev3.Address) {
		sa := a.GetSocketAddress()
		if ip, err := netip.ParseAddr(sa.GetAddress()); err == nil {
			seen[netip.AddrPortFrom(ip, uint16(sa.GetPortValue()))] = struct{}{}
		}
	}
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			add(lb.GetEndpoint().GetAddress())
			for _, aa := range lb.GetEndpoint().GetAdditionalAddresses() {
				add(aa.GetAddress())
			}
		}
	}
	return seen
}
