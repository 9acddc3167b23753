package translator

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/watcher"
)

// ZonelessSubZone is the sub-zone of the locality that holds endpoints with
// no zone (EndpointSlice endpoints[].zone unset). That locality is
// Locality{Zone: "", SubZone: ZonelessSubZone}.
//
// gRPC needs a locality on every LocalityLbEndpoints, and a locality with
// every field empty is fragile (the clients treat an all-empty locality as
// "no locality" in places, and it reads as a bug in dumps). Endpoints with a
// zone get Locality{Zone: zone} with an empty sub-zone, so this locality can
// never be equal to, or merged with, a real zone's, whatever the zone is
// called (even a zone named "unknown" gets Locality{Zone: "unknown"}). It
// sorts first, since its zone is "".
const ZonelessSubZone = "unknown"

// candidate is one endpoint after validation: normalized addresses and a
// port that a client can dial.
type candidate struct {
	addrs []netip.Addr
	// primary is addrs[0].String(), kept for sorting.
	primary string
	port    uint32
	zone    string
}

// loadAssignment builds the ClusterLoadAssignment named canonical from the
// endpoints of one Service port. It returns diagnostics for endpoints it had
// to skip; the others are still served.
//
// Which endpoints are served:
//   - the ready ones (gRPC clients use HEALTHY and UNKNOWN endpoints only and
//     drop the rest, so sending not-ready endpoints would only add weight to
//     localities with nothing to pick);
//   - when there is no usable ready endpoint at all but some are serving and
//     terminating, those, marked HEALTHY: kube-proxy's fallback for
//     terminating endpoints (KEP-1669), which keeps connections working
//     while the last pods of a rolling update drain rather than failing
//     every call. Marking them DRAINING would make gRPC drop them, which is
//     what the fallback exists to avoid.
//
// Endpoints are grouped by zone into one LocalityLbEndpoints each, sorted by
// zone, all at priority 0, each with load_balancing_weight = its number of
// endpoints (never 0: a locality is only built for a non-empty group). Within
// a locality endpoints keep the order of the view (primary address, then
// port; see compareCandidates). An (address,
// port) pair is served once per assignment, as gRPC requires across every
// address of every endpoint, including additional (dual-stack) addresses:
// later duplicates are dropped silently, as kube-proxy does for endpoints
// that appear in two slices. An endpoint with several addresses sends the
// first as its address and the rest as additional_addresses (gRFC A61).
//
// With no usable endpoint the assignment has no localities: gRPC clients then
// fail calls fast with UNAVAILABLE.
func loadAssignment(canonical string, key watcher.ServiceKey, portLabel string, eps []watcher.Endpoint) (*endpointv3.ClusterLoadAssignment, []Diagnostic) {
	var diags []Diagnostic
	var ready, fallback []candidate
	for i := range eps {
		e := &eps[i]
		if !e.Ready && !(e.Serving && e.Terminating) {
			// Never served, so not validated either: a bad address is
			// reported when the endpoint could be served.
			continue
		}
		c, err := validEndpoint(e)
		if err != nil {
			diags = append(diags, Diagnostic{Service: key, Port: portLabel, Reason: err.Error()})
			continue
		}
		if e.Ready {
			ready = append(ready, c)
		} else {
			fallback = append(fallback, c)
		}
	}
	chosen := ready
	if len(chosen) == 0 {
		chosen = fallback
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: canonical}
	if len(chosen) == 0 {
		return cla, diags
	}

	// The watcher sorts endpoints already; sorting here too keeps the output
	// deterministic whatever the input order (and the normalized form of an
	// address may sort differently from its original spelling).
	if !slices.IsSortedFunc(chosen, compareCandidates) {
		slices.SortFunc(chosen, compareCandidates)
	}

	// Group by zone after dropping duplicate (address, port) pairs.
	seen := make(map[netip.AddrPort]struct{}, len(chosen))
	groups := make(map[string][]*endpointv3.LbEndpoint)
	var zones []string
	for _, c := range chosen {
		addrs := c.addrs[:0] // c is ours: filter in place
		for _, a := range c.addrs {
			ap := netip.AddrPortFrom(a, uint16(c.port))
			if _, dup := seen[ap]; dup {
				continue
			}
			seen[ap] = struct{}{}
			addrs = append(addrs, a)
		}
		if len(addrs) == 0 {
			continue
		}
		if _, ok := groups[c.zone]; !ok {
			zones = append(zones, c.zone)
		}
		groups[c.zone] = append(groups[c.zone], lbEndpoint(addrs, c.port))
	}
	slices.Sort(zones)
	cla.Endpoints = make([]*endpointv3.LocalityLbEndpoints, 0, len(zones))
	for _, z := range zones {
		lbs := groups[z]
		cla.Endpoints = append(cla.Endpoints, &endpointv3.LocalityLbEndpoints{
			Locality:            locality(z),
			LbEndpoints:         lbs,
			LoadBalancingWeight: wrapperspb.UInt32(uint32(len(lbs))),
			Priority:            0,
		})
	}
	return cla, diags
}

// compareCandidates orders by primary address and port, as the view does,
// then by every other field, so that the order is total: two entries that
// compare equal are identical, and the output cannot depend on input order
// even for a view that breaks its one-entry-per-(address, port) promise.
func compareCandidates(a, b candidate) int {
	return cmp.Or(
		cmp.Compare(a.primary, b.primary),
		cmp.Compare(a.port, b.port),
		cmp.Compare(a.zone, b.zone),
		slices.CompareFunc(a.addrs, b.addrs, netip.Addr.Compare),
	)
}

// locality returns the Locality of endpoints in zone; see ZonelessSubZone.
func locality(zone string) *corev3.Locality {
	if zone == "" {
		return &corev3.Locality{SubZone: ZonelessSubZone}
	}
	return &corev3.Locality{Zone: zone}
}

// lbEndpoint returns a HEALTHY endpoint at addrs[0]:port with the other
// addresses as additional addresses (gRFC A61). addrs must not be empty.
func lbEndpoint(addrs []netip.Addr, port uint32) *endpointv3.LbEndpoint {
	ep := &endpointv3.Endpoint{Address: socketAddress(addrs[0], port)}
	if len(addrs) > 1 {
		ep.AdditionalAddresses = make([]*endpointv3.Endpoint_AdditionalAddress, 0, len(addrs)-1)
		for _, a := range addrs[1:] {
			ep.AdditionalAddresses = append(ep.AdditionalAddresses,
				&endpointv3.Endpoint_AdditionalAddress{Address: socketAddress(a, port)})
		}
	}
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: ep},
		HealthStatus:   corev3.HealthStatus_HEALTHY,
	}
}

// socketAddress returns the TCP address a:port.
func socketAddress(a netip.Addr, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       a.String(),
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		},
	}}
}

// validEndpoint checks that e can be dialled: at least one address, every
// address an IP without a scope zone, and a port in 1..65535. An endpoint
// with any bad address is skipped whole rather than served with some of its
// addresses, since the bad value means the input is not what we think it is.
func validEndpoint(e *watcher.Endpoint) (candidate, error) {
	if len(e.Addresses) == 0 {
		return candidate{}, fmt.Errorf("endpoint has no address; endpoint skipped")
	}
	if e.Port < 1 || e.Port > 65535 {
		return candidate{}, fmt.Errorf("endpoint %q has invalid port %d; endpoint skipped", e.Addresses[0], e.Port)
	}
	c := candidate{addrs: make([]netip.Addr, 0, len(e.Addresses)), port: uint32(e.Port), zone: e.Zone}
	for _, s := range e.Addresses {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return candidate{}, fmt.Errorf("endpoint address %q is not an IP address; endpoint skipped", s)
		}
		c.addrs = append(c.addrs, a)
	}
	c.primary = c.addrs[0].String()
	return c, nil
}
