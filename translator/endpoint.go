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

// candidate is one endpoint after validation: addresses that a client can
// dial, in their output form, and a port in 1..65535.
type candidate struct {
	addrs []ipAddr
	port  uint32
	at    place
}

// ipAddr is a parsed address with the string that is sent for it.
type ipAddr struct {
	ip netip.Addr
	s  string // ip.String(), the canonical spelling
}

// loadAssignment builds the ClusterLoadAssignment named canonical from the
// endpoints of one Service port. It returns diagnostics for endpoints it had
// to skip; the others are still served.
//
// Which endpoints are served:
//   - the ready ones (gRPC clients use HEALTHY and UNKNOWN endpoints only and
//     drop the rest, so sending not-ready endpoints would only add weight to
//     localities with nothing to pick; Envoy clients also get the serving,
//     terminating ones, as DRAINING: see drainingAssignment);
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
	ready := make([]candidate, 0, len(eps))
	var fallback []candidate
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

	// Drop duplicate (address, port) pairs, in place (chosen is ours), and
	// count what is left per zone.
	seen := make(map[netip.AddrPort]struct{}, len(chosen))
	perZone := make(map[place]int, 4)
	kept, extra := chosen[:0], 0
	for _, c := range chosen {
		addrs := c.addrs[:0]
		for _, a := range c.addrs {
			ap := netip.AddrPortFrom(a.ip, uint16(c.port))
			if _, dup := seen[ap]; dup {
				continue
			}
			seen[ap] = struct{}{}
			addrs = append(addrs, a)
		}
		if len(addrs) == 0 {
			continue
		}
		c.addrs = addrs
		kept = append(kept, c)
		extra += len(addrs) - 1
		perZone[c.at]++
	}

	// One locality per zone, sorted by zone; each zone's endpoints take a
	// contiguous window of one pointer slice, in address order.
	zones := make([]place, 0, len(perZone))
	for z := range perZone {
		zones = append(zones, z)
	}
	slices.SortFunc(zones, comparePlaces)
	offset := make(map[place]int, len(zones))
	next := 0
	for _, z := range zones {
		offset[z] = next
		next += perZone[z]
	}
	ptrs := make([]*endpointv3.LbEndpoint, len(kept))
	fill := make(map[place]int, len(zones))
	alloc := newEndpointAlloc(len(kept), extra)
	for _, c := range kept {
		i := offset[c.at] + fill[c.at]
		fill[c.at]++
		ptrs[i] = alloc.lbEndpoint(c.addrs, c.port)
	}
	cla.Endpoints = make([]*endpointv3.LocalityLbEndpoints, 0, len(zones))
	for _, z := range zones {
		lo, n := offset[z], perZone[z]
		cla.Endpoints = append(cla.Endpoints, &endpointv3.LocalityLbEndpoints{
			Locality:            locality(z),
			LbEndpoints:         ptrs[lo : lo+n : lo+n],
			LoadBalancingWeight: wrapperspb.UInt32(uint32(n)),
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
		cmp.Compare(a.addrs[0].s, b.addrs[0].s),
		cmp.Compare(a.port, b.port),
		comparePlaces(a.at, b.at),
		slices.CompareFunc(a.addrs, b.addrs, func(x, y ipAddr) int { return x.ip.Compare(y.ip) }),
	)
}

// place is where an endpoint runs: its Node's region (when Nodes are
// watched) and its zone. Endpoints are grouped into localities by place.
type place struct{ region, zone string }

func comparePlaces(a, b place) int {
	return cmp.Or(cmp.Compare(a.region, b.region), cmp.Compare(a.zone, b.zone))
}

// locality returns the Locality of endpoints at p; see ZonelessSubZone.
func locality(p place) *corev3.Locality {
	if p.zone == "" {
		return &corev3.Locality{Region: p.region, SubZone: ZonelessSubZone}
	}
	return &corev3.Locality{Region: p.region, Zone: p.zone}
}

// endpointAlloc hands out the messages of an assignment's endpoints from a
// few slices, one per message shape, rather than as seven small objects per
// endpoint: translation cost is dominated by allocation (see
// BenchmarkService). Each message is handed out once, so none is shared,
// and none is copied (they are used in place through pointers).
type endpointAlloc struct {
	eps   []endpointMsgs
	extra []addressMsgs
	adds  []endpointv3.Endpoint_AdditionalAddress
	addPs []*endpointv3.Endpoint_AdditionalAddress
}

// endpointMsgs are the messages of one LbEndpoint.
type endpointMsgs struct {
	lb   endpointv3.LbEndpoint
	host endpointv3.LbEndpoint_Endpoint
	ep   endpointv3.Endpoint
	addr addressMsgs
}

// addressMsgs are the messages of one TCP socket address.
type addressMsgs struct {
	addr corev3.Address
	sa   corev3.Address_SocketAddress
	sock corev3.SocketAddress
	port corev3.SocketAddress_PortValue
}

// newEndpointAlloc makes room for n endpoints with extra additional
// addresses between them.
func newEndpointAlloc(n, extra int) *endpointAlloc {
	a := &endpointAlloc{eps: make([]endpointMsgs, n)}
	if extra > 0 {
		a.extra = make([]addressMsgs, extra)
		a.adds = make([]endpointv3.Endpoint_AdditionalAddress, extra)
		a.addPs = make([]*endpointv3.Endpoint_AdditionalAddress, extra)
	}
	return a
}

// lbEndpoint returns a HEALTHY endpoint at addrs[0]:port with the other
// addresses as additional addresses (gRFC A61). addrs must not be empty.
func (a *endpointAlloc) lbEndpoint(addrs []ipAddr, port uint32) *endpointv3.LbEndpoint {
	m := &a.eps[0]
	a.eps = a.eps[1:]
	m.ep.Address = m.addr.socketAddress(addrs[0].s, port)
	if k := len(addrs) - 1; k > 0 {
		ps := a.addPs[:k:k]
		for i, ad := range addrs[1:] {
			a.adds[i].Address = a.extra[i].socketAddress(ad.s, port)
			ps[i] = &a.adds[i]
		}
		m.ep.AdditionalAddresses = ps
		a.extra, a.adds, a.addPs = a.extra[k:], a.adds[k:], a.addPs[k:]
	}
	m.host.Endpoint = &m.ep
	m.lb.HostIdentifier = &m.host
	m.lb.HealthStatus = corev3.HealthStatus_HEALTHY
	return &m.lb
}

// socketAddress fills m as the TCP address ip:port and returns it.
func (m *addressMsgs) socketAddress(ip string, port uint32) *corev3.Address {
	m.port.PortValue = port
	m.sock.Protocol = corev3.SocketAddress_TCP
	m.sock.Address = ip
	m.sock.PortSpecifier = &m.port
	m.sa.SocketAddress = &m.sock
	m.addr.Address = &m.sa
	return &m.addr
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
	c := candidate{addrs: make([]ipAddr, 0, len(e.Addresses)), port: uint32(e.Port), at: place{region: e.Region, zone: e.Zone}}
	for _, s := range e.Addresses {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return candidate{}, fmt.Errorf("endpoint address %q is not an IP address; endpoint skipped", s)
		}
		if !ip.Is4() {
			// ParseAddr accepts only the canonical dotted quad for IPv4, but
			// IPv6 has many spellings (case, zero compression, embedded
			// IPv4): send and compare one.
			s = ip.String()
		}
		c.addrs = append(c.addrs, ipAddr{ip: ip, s: s})
	}
	return c, nil
}
