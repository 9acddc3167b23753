package translator

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
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
func loadAssignment(canonical string, key model.ServiceKey, portLabel string, eps []model.Endpoint) (*endpointv3.ClusterLoadAssignment, []Diagnostic) {
	var diags []Diagnostic
	n := 0
	for i := range eps {
		n += len(eps[i].Addresses)
	}
	// Every candidate's addresses are a window of this one slice.
	buf := make([]ipAddr, 0, n)
	ready := make([]candidate, 0, len(eps))
	var fallback []candidate
	for i := range eps {
		e := &eps[i]
		if !e.Ready && !(e.Serving && e.Terminating) {
			// Never served, so not validated either: a bad address is
			// reported when the endpoint could be served.
			continue
		}
		var c candidate
		var err error
		c, buf, err = validEndpoint(e, buf)
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
	kept, extra := dedup(chosen)
	alloc := newEndpointAlloc(len(kept), extra)
	assemble(cla, len(kept), func(i int) place { return kept[i].at }, func(i int) *endpointv3.LbEndpoint {
		c := &kept[i]
		return alloc.lbEndpoint(c.addrs[0].s, c.addrs[1:], c.port)
	})
	return cla, diags
}

// usualView reports whether eps has the usual shape that sortedWire
// writes: not empty, every endpoint ready, with one IPv4 address in its one
// spelling, a valid port and a valid place (see validPlace), in strictly
// increasing (address, port) order, the order of the view (see
// model.Port.Endpoints). Such a view is sorted as compareCandidates sorts
// and has no duplicate pair, so loadAssignment would keep every endpoint in
// view order and report nothing.
func usualView(eps []model.Endpoint) bool {
	if len(eps) == 0 {
		return false
	}
	var prevIP netip.Addr
	for i := range eps {
		e := &eps[i]
		if !e.Ready || len(e.Addresses) != 1 || e.Port < 1 || e.Port > 65535 {
			return false
		}
		ip, err := netip.ParseAddr(e.Addresses[0])
		if err != nil || !ip.Is4() {
			return false
		}
		if i == 0 {
			prevIP = ip
		} else {
			prev := &eps[i-1]
			if cmp.Or(prevIP.Compare(ip), cmp.Compare(prev.Port, e.Port)) >= 0 {
				return false
			}
			prevIP = ip
			if prev.Zone == e.Zone && prev.Region == e.Region {
				continue // checked already
			}
		}
		if validPlace(e) != nil {
			return false
		}
	}
	return true
}

// validPlace checks the endpoint's zone and region, which become a
// locality's strings: protobuf strings must be UTF-8, and a client drops a
// whole assignment it cannot decode.
func validPlace(e *model.Endpoint) error {
	if !utf8.ValidString(e.Zone) || !utf8.ValidString(e.Region) {
		return fmt.Errorf("endpoint %q has a zone or region that is not UTF-8; endpoint skipped", e.Addresses[0])
	}
	return nil
}

// assemble sets the localities of cla from n endpoints in address order:
// at(i) is the place of the i-th and lb(i) builds its LbEndpoint (called
// once for each i, in order). There is one locality per place, sorted by
// place; each place's endpoints take a contiguous window of one pointer
// slice, in address order. n must be > 0.
func assemble(cla *endpointv3.ClusterLoadAssignment, n int, at func(int) place, lb func(int) *endpointv3.LbEndpoint) {
	var few [4]place // room for the usual number of places, on the stack
	places := distinctPlaces(few[:0], n, at)
	locs := make([]localityMsgs, len(places))
	for i := range n {
		locs[placeIndex(places, at(i))].n++
	}
	next := 0
	for i := range locs {
		locs[i].next = next
		next += locs[i].n
	}
	ptrs := make([]*endpointv3.LbEndpoint, n)
	for i := range n {
		l := &locs[placeIndex(places, at(i))]
		ptrs[l.next] = lb(i)
		l.next++
	}
	cla.Endpoints = make([]*endpointv3.LocalityLbEndpoints, len(places))
	lo := 0
	for i, p := range places {
		cla.Endpoints[i] = locs[i].fill(p, ptrs[lo:lo+locs[i].n:lo+locs[i].n])
		lo += locs[i].n
	}
}

// dedup drops, in place (chosen is ours), every (address, port) pair that
// an earlier candidate in chosen already serves, and candidates left with
// no address. It returns what is kept and the number of additional
// (non-primary) addresses in it. chosen must be sorted by compareCandidates.
func dedup(chosen []candidate) (kept []candidate, extra int) {
	single := true
	for _, c := range chosen {
		if len(c.addrs) != 1 {
			single = false
			break
		}
	}
	if single {
		// Sorted by primary address, then port: duplicates are neighbours
		// (two spellings of one address are one, see ipAddr).
		kept = chosen[:1]
		for _, c := range chosen[1:] {
			last := kept[len(kept)-1]
			if c.port == last.port && c.addrs[0].ip == last.addrs[0].ip {
				continue
			}
			kept = append(kept, c)
		}
		return kept, 0
	}
	return dedupSeen(chosen)
}

// dedupSeen is dedup for any chosen: an additional address may repeat any
// address of any endpoint, so every pair served so far is remembered.
func dedupSeen(chosen []candidate) (kept []candidate, extra int) {
	return dedupAgainst(make(map[netip.AddrPort]struct{}, len(chosen)), chosen)
}

// dedupAgainst drops from chosen, in place, every address:port in seen or
// served by an earlier candidate, and candidates left without an address;
// it adds what it keeps to seen. extra counts the kept additional
// addresses.
func dedupAgainst(seen map[netip.AddrPort]struct{}, chosen []candidate) (kept []candidate, extra int) {
	kept = chosen[:0]
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
	}
	return kept, extra
}

// distinctPlaces appends to out (which must be empty) the places at(0) …
// at(n-1), sorted, each once, and returns it.
func distinctPlaces(out []place, n int, at func(int) place) []place {
	// A Service's endpoints are in a few zones: a linear search is cheapest.
	const few = 16
	for i := range n {
		p := at(i)
		if slices.Contains(out, p) {
			continue
		}
		if len(out) == few {
			// Many places: sort them all rather than search linearly.
			out = make([]place, n)
			for j := range n {
				out[j] = at(j)
			}
			slices.SortFunc(out, comparePlaces)
			return slices.Compact(out)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, comparePlaces)
	return out
}

// placeIndex returns the index of p in places, which holds p and is sorted.
func placeIndex(places []place, p place) int {
	if len(places) <= 8 {
		return slices.Index(places, p)
	}
	i, _ := slices.BinarySearchFunc(places, p, comparePlaces)
	return i
}

// localityMsgs are the messages of one LocalityLbEndpoints, allocated
// together with those of the assignment's other localities, and used in
// place; n and next count its endpoints while they are placed.
type localityMsgs struct {
	lle     endpointv3.LocalityLbEndpoints
	loc     corev3.Locality
	weight  wrapperspb.UInt32Value
	n, next int
}

// fill makes m the priority-0 locality at p holding lbs, weighted by their
// number, and returns it. See locality for the Locality.
func (m *localityMsgs) fill(p place, lbs []*endpointv3.LbEndpoint) *endpointv3.LocalityLbEndpoints {
	m.loc.Region = p.region
	if p.zone == "" {
		m.loc.SubZone = ZonelessSubZone
	} else {
		m.loc.Zone = p.zone
	}
	m.weight.Value = uint32(len(lbs))
	m.lle.Locality = &m.loc
	m.lle.LbEndpoints = lbs
	m.lle.LoadBalancingWeight = &m.weight
	m.lle.Priority = 0
	return &m.lle
}

// compareCandidates orders by primary address and port, as the view does,
// then by every other field, so that the order is total: two entries that
// compare equal are identical, and the output cannot depend on input order
// even for a view that breaks its one-entry-per-(address, port) promise.
func compareCandidates(a, b candidate) int {
	return cmp.Or(
		a.addrs[0].ip.Compare(b.addrs[0].ip),
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

// lbEndpoint returns a HEALTHY endpoint at primary:port with more as its
// additional addresses (gRFC A61).
func (a *endpointAlloc) lbEndpoint(primary string, more []ipAddr, port uint32) *endpointv3.LbEndpoint {
	m := &a.eps[0]
	a.eps = a.eps[1:]
	m.ep.Address = m.addr.socketAddress(primary, port)
	if k := len(more); k > 0 {
		ps := a.addPs[:k:k]
		for i, ad := range more {
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
// The candidate's addresses are appended to buf, which is returned (as it
// was when e is refused).
func validEndpoint(e *model.Endpoint, buf []ipAddr) (candidate, []ipAddr, error) {
	if len(e.Addresses) == 0 {
		return candidate{}, buf, fmt.Errorf("endpoint has no address; endpoint skipped")
	}
	if e.Port < 1 || e.Port > 65535 {
		return candidate{}, buf, fmt.Errorf("endpoint %q has invalid port %d; endpoint skipped", e.Addresses[0], e.Port)
	}
	if err := validPlace(e); err != nil {
		return candidate{}, buf, err
	}
	start := len(buf)
	for _, s := range e.Addresses {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return candidate{}, buf[:start], fmt.Errorf("endpoint address %q is not an IP address; endpoint skipped", s)
		}
		if !ip.Is4() {
			// ParseAddr accepts only the canonical dotted quad for IPv4, but
			// IPv6 has many spellings (case, zero compression, embedded
			// IPv4): send and compare one.
			s = ip.String()
		}
		buf = append(buf, ipAddr{ip: ip, s: s})
	}
	// A full slice expression: dedup rewrites c.addrs in place and must not
	// reach into the next candidate's window.
	c := candidate{addrs: buf[start:len(buf):len(buf)], port: uint32(e.Port), at: place{region: e.Region, zone: e.Zone}}
	return c, buf, nil
}
