package translator

import (
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/switchboard-xds/switchboard/model"
)

// Field numbers of the messages that sortedWire writes.
const (
	claClusterName   = 1 // ClusterLoadAssignment.cluster_name
	claEndpoints     = 2 // ClusterLoadAssignment.endpoints
	lleLocality      = 1 // LocalityLbEndpoints.locality
	lleLbEndpoints   = 2 // LocalityLbEndpoints.lb_endpoints
	lleWeight        = 3 // LocalityLbEndpoints.load_balancing_weight
	localityRegion   = 1 // Locality.region
	localityZone     = 2 // Locality.zone
	localitySubZone  = 3 // Locality.sub_zone
	lbEndpoint       = 1 // LbEndpoint.endpoint
	lbHealthStatus   = 2 // LbEndpoint.health_status
	endpointAddress  = 1 // Endpoint.address
	addressSocket    = 1 // Address.socket_address
	socketAddress    = 2 // SocketAddress.address
	socketPortValue  = 3 // SocketAddress.port_value
	uint32ValueValue = 1 // google.protobuf.UInt32Value.value
	healthy          = 1 // core.v3.HealthStatus HEALTHY
)

// sortedWire writes the assignment of a usual view (see usualView, which
// the caller checks) straight to wire form: the same bytes as
// encode(loadAssignment(canonical, ...)) (see TestSortedWire), without
// building a message.
//
// Fields are written in the order protobuf-go's marshaller writes them, zero
// scalars left out: one locality per place in place order (region, then
// zone or the zoneless sub-zone), its endpoints in view order, then the
// locality's weight, its number of endpoints; priority 0 is not written.
// Each endpoint is HEALTHY at address:port over TCP (the zero protocol, so
// not written); protobuf-go writes a oneof after the plain fields, so an
// LbEndpoint's health_status (2) comes before its endpoint (1, in the
// host_identifier oneof). The same bytes as the message path keep versions,
// which are hashes of the bytes, equal for equal content whichever path
// built it.
func sortedWire(canonical string, eps []model.Endpoint) Encoded {
	at := func(i int) place { return place{region: eps[i].Region, zone: eps[i].Zone} }
	var few [4]place
	places := distinctPlaces(few[:0], len(eps), at)
	var fewLocs [4]wireLocality
	locs := fewLocs[:0]
	if len(places) > len(fewLocs) {
		locs = make([]wireLocality, 0, len(places))
	}
	locs = locs[:len(places)]
	// One pass sizes every locality; the endpoints' order within their
	// locality is kept by visiting them in view order again when writing.
	// One pass sizes every locality and notes each endpoint's; order then
	// lists the endpoints locality by locality, in view order within each
	// (a counting sort), so that writing visits each endpoint once.
	var order []int32
	if len(places) > 1 {
		order = make([]int32, 2*len(eps))
	}
	for i := range eps {
		k := 0
		if order != nil {
			k = placeIndex(places, at(i))
			order[len(eps)+i] = int32(k)
		}
		locs[k].n++
		locs[k].size += sizeMessage(lleLbEndpoints, lbEndpointSize(eps[i].Addresses[0], uint32(eps[i].Port)))
	}
	if order != nil {
		next := 0
		for k := range locs {
			locs[k].next = next
			next += locs[k].n
		}
		for i := range eps {
			l := &locs[order[len(eps)+i]]
			order[l.next] = int32(i)
			l.next++
		}
	}
	total := sizeMessage(claClusterName, len(canonical))
	for k, p := range places {
		l := &locs[k]
		l.size += sizeMessage(lleLocality, localitySize(p)) + sizeMessage(lleWeight, weightSize(l.n))
		total += sizeMessage(claEndpoints, l.size)
	}
	b := make([]byte, 0, total)
	b = appendString(b, claClusterName, canonical)
	pos := 0
	for k, p := range places {
		b = appendHeader(b, claEndpoints, locs[k].size)
		b = appendHeader(b, lleLocality, localitySize(p))
		region, zone, subZone := p.wireFields()
		b = appendLocalityFields(b, region, zone, subZone)
		for j := pos; j < pos+locs[k].n; j++ {
			i := j
			if order != nil {
				i = int(order[j])
			}
			b = appendLbEndpoint(b, eps[i].Addresses[0], uint32(eps[i].Port))
		}
		pos += locs[k].n
		b = appendHeader(b, lleWeight, weightSize(locs[k].n))
		b = protowire.AppendTag(b, uint32ValueValue, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(locs[k].n))
	}
	if len(b) != total {
		// Unreachable: sizes and writes follow the same fields.
		panic(fmt.Sprintf("translator: assignment %q encoded in %d bytes, sized %d", canonical, len(b), total))
	}
	return Encoded{Name: canonical, Wire: b}
}

// wireLocality is what sortedWire counts of one locality: its endpoints,
// the size of its LocalityLbEndpoints message, and where its endpoints go
// next in the order of writing.
type wireLocality struct{ n, size, next int }

// wireFields are the Locality fields of p (see locality): region, zone,
// and the zoneless sub-zone when p has no zone.
func (p place) wireFields() (region, zone, subZone string) {
	if p.zone == "" {
		return p.region, "", ZonelessSubZone
	}
	return p.region, p.zone, ""
}

func localitySize(p place) int { return localityFieldsSize(p.wireFields()) }

// localityFieldsSize is the size of a Locality message with these fields.
func localityFieldsSize(region, zone, subZone string) int {
	n := 0
	for _, s := range [...]string{region, zone, subZone} {
		if s != "" {
			n += sizeMessage(localityRegion, len(s)) // every field number < 16
		}
	}
	return n
}

// appendLocalityFields writes the fields of a Locality message, the empty
// ones left out.
func appendLocalityFields(b []byte, region, zone, subZone string) []byte {
	if region != "" {
		b = appendString(b, localityRegion, region)
	}
	if zone != "" {
		b = appendString(b, localityZone, zone)
	}
	if subZone != "" {
		b = appendString(b, localitySubZone, subZone)
	}
	return b
}

func weightSize(n int) int {
	return protowire.SizeTag(uint32ValueValue) + protowire.SizeVarint(uint64(n))
}

// socketSize is the size of a SocketAddress message at ip:port over TCP
// (the zero protocol, not written); an empty ip is left out too.
func socketSize(ip string, port uint32) int {
	n := protowire.SizeTag(socketPortValue) + protowire.SizeVarint(uint64(port))
	if ip != "" {
		n += sizeMessage(socketAddress, len(ip))
	}
	return n
}

// appendSocket writes the fields of a SocketAddress message at ip:port:
// address, then the port, which is in the port_specifier oneof and so
// written even when 0.
func appendSocket(b []byte, ip string, port uint32) []byte {
	if ip != "" {
		b = appendString(b, socketAddress, ip)
	}
	b = protowire.AppendTag(b, socketPortValue, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(port))
}

// lbEndpointSize is the size of the LbEndpoint message that
// appendLbEndpoint writes.
func lbEndpointSize(ip string, port uint32) int {
	addr := sizeMessage(addressSocket, socketSize(ip, port))
	ep := sizeMessage(endpointAddress, addr)
	return sizeMessage(lbEndpoint, ep) + protowire.SizeTag(lbHealthStatus) + protowire.SizeVarint(healthy)
}

// appendLbEndpoint appends one lb_endpoints field: a HEALTHY endpoint at
// ip:port over TCP.
func appendLbEndpoint(b []byte, ip string, port uint32) []byte {
	sa := socketSize(ip, port)
	addr := sizeMessage(addressSocket, sa)
	ep := sizeMessage(endpointAddress, addr)
	b = appendHeader(b, lleLbEndpoints, lbEndpointSize(ip, port))
	b = protowire.AppendTag(b, lbHealthStatus, protowire.VarintType)
	b = protowire.AppendVarint(b, healthy)
	b = appendHeader(b, lbEndpoint, ep)
	b = appendHeader(b, endpointAddress, addr)
	b = appendHeader(b, addressSocket, sa)
	return appendSocket(b, ip, port)
}

// Field numbers of the Listener and RouteConfiguration fields that
// listenerWire and routeWire write.
const (
	listenerName      = 1  // Listener.name
	listenerAPI       = 19 // Listener.api_listener
	apiListenerConfig = 1  // ApiListener.api_listener
	anyTypeURL        = 1  // google.protobuf.Any.type_url
	anyValue          = 2  // google.protobuf.Any.value
	rcName            = 1  // RouteConfiguration.name
	rcVirtualHosts    = 2  // RouteConfiguration.virtual_hosts
	vhName            = 1  // VirtualHost.name
	vhDomains         = 2  // VirtualHost.domains
	vhRoutes          = 3  // VirtualHost.routes
	routeMatch        = 1  // Route.match
	routeAction       = 2  // Route.route (oneof action)
	matchPrefix       = 1  // RouteMatch.prefix (oneof path_specifier)
	actionCluster     = 1  // RouteAction.cluster (oneof cluster_specifier)
)

// listenerWire is apiListener(name, routeName) encoded, written directly
// (the manager's bytes come from hcmParts) when it can be.
func listenerWire(name, routeName string) (Encoded, error) {
	w := hcmParts()
	if w.filters == nil || routeName == "" || !utf8.ValidString(routeName) || !utf8.ValidString(name) {
		lis := apiListener(name, routeName)
		if lis == nil {
			return Encoded{}, fmt.Errorf("listener %q: route name %q is not UTF-8", name, routeName)
		}
		return encode(name, lis)
	}
	hcm := w.size(routeName)
	anySize := sizeMessage(anyTypeURL, len(hcmAnyTypeURL)) + sizeMessage(anyValue, hcm)
	api := sizeMessage(apiListenerConfig, anySize)
	b := make([]byte, 0, sizeMessage(listenerName, len(name))+sizeMessage(listenerAPI, api))
	b = appendString(b, listenerName, name)
	b = appendHeader(b, listenerAPI, api)
	b = appendHeader(b, apiListenerConfig, anySize)
	b = appendString(b, anyTypeURL, hcmAnyTypeURL)
	b = appendHeader(b, anyValue, hcm)
	b = w.append(b, routeName)
	return Encoded{Name: name, Wire: b}, nil
}

// routeWire is routeConfiguration(canonical, aliases, short) with pol's
// route policy applied, encoded. Without route policy, the usual case, it
// is written directly: the names are ASCII (DNS names, see portNames), so
// they need no UTF-8 check.
func routeWire(pol policy, canonical string, aliases, short []string) (Encoded, error) {
	if pol.hashHeader != "" || pol.timeout > 0 || pol.retryOn != "" {
		rc := routeConfiguration(canonical, aliases, short)
		pol.applyRoute(rc)
		return encode(canonical, rc)
	}
	var few [8]string
	domains := append(append(append(few[:0], canonical), aliases...), short...)
	slices.Sort(domains)
	route := sizeMessage(routeMatch, sizeMessage(matchPrefix, 1)) +
		sizeMessage(routeAction, sizeMessage(actionCluster, len(canonical)))
	vh := sizeMessage(vhName, len(canonical)) + sizeMessage(vhRoutes, route)
	for _, d := range domains {
		vh += sizeMessage(vhDomains, len(d))
	}
	b := make([]byte, 0, sizeMessage(rcName, len(canonical))+sizeMessage(rcVirtualHosts, vh))
	b = appendString(b, rcName, canonical)
	b = appendHeader(b, rcVirtualHosts, vh)
	b = appendString(b, vhName, canonical)
	for _, d := range domains {
		b = appendString(b, vhDomains, d)
	}
	b = appendHeader(b, vhRoutes, route)
	b = appendHeader(b, routeMatch, sizeMessage(matchPrefix, 1))
	b = appendString(b, matchPrefix, "/")
	b = appendHeader(b, routeAction, sizeMessage(actionCluster, len(canonical)))
	b = appendString(b, actionCluster, canonical)
	return Encoded{Name: canonical, Wire: b}, nil
}

// Field numbers of the Cluster fields that clusterWire writes.
const (
	clusterName      = 1 // Cluster.name
	clusterType      = 2 // Cluster.type (oneof cluster_discovery_type)
	clusterEDSConfig = 3 // Cluster.eds_cluster_config
	clusterTimeout   = 4 // Cluster.connect_timeout
	edsConfigSource  = 1 // Cluster.EdsClusterConfig.eds_config
	edsServiceName   = 2 // Cluster.EdsClusterConfig.service_name
	clusterTypeEDS   = 3 // Cluster.DiscoveryType EDS
)

// edsWire are the marshalled parts of edsCluster that are the same
// for every cluster: the ADS config source and the connect timeout.
// TestWireShortcuts checks that clusterWire, built from them, gives the
// bytes protobuf-go writes for the message.
type edsWire struct {
	configSource, timeout []byte
}

// edsParts builds the edsWire once per process (a sync.OnceValue: never
// changed after, safe for concurrent use).
var edsParts = sync.OnceValue(func() edsWire {
	sh := clusterParts()
	cs, err1 := deterministic.Marshal(sh.adsSource)
	to, err2 := deterministic.Marshal(sh.connectTimeout)
	if err1 != nil || err2 != nil {
		return edsWire{}
	}
	return edsWire{configSource: cs, timeout: to}
})

// append appends the wire form of edsCluster(name) to b: name,
// eds_cluster_config {eds_config, service_name}, connect_timeout, then the
// type, which protobuf-go writes after the plain fields (it is a oneof).
func (p edsWire) append(b []byte, name string) []byte {
	eds := sizeMessage(edsConfigSource, len(p.configSource)) + sizeMessage(edsServiceName, len(name))
	b = appendString(b, clusterName, name)
	b = appendHeader(b, clusterEDSConfig, eds)
	b = appendHeader(b, edsConfigSource, len(p.configSource))
	b = append(b, p.configSource...)
	b = appendString(b, edsServiceName, name)
	b = appendHeader(b, clusterTimeout, len(p.timeout))
	b = append(b, p.timeout...)
	b = protowire.AppendTag(b, clusterType, protowire.VarintType)
	return protowire.AppendVarint(b, clusterTypeEDS)
}

func (p edsWire) size(name string) int {
	eds := sizeMessage(edsConfigSource, len(p.configSource)) + sizeMessage(edsServiceName, len(name))
	return sizeMessage(clusterName, len(name)) + sizeMessage(clusterEDSConfig, eds) +
		sizeMessage(clusterTimeout, len(p.timeout)) + protowire.SizeTag(clusterType) + protowire.SizeVarint(clusterTypeEDS)
}

// clusterWire is policyCluster(pol, canonical, appProtocol) encoded; the
// plain EDS cluster, with no policy and no appProtocol, is written
// directly (the name is ASCII, see routeWire). policyErr is policyCluster's
// error (the cluster is then served without its policy); err is a cluster
// that does not encode.
func clusterWire(pol policy, canonical, appProtocol string) (e Encoded, policyErr, err error) {
	if p := edsParts(); p.configSource != nil && pol == (policy{}) && appProtocol == "" {
		return Encoded{Name: canonical, Wire: p.append(make([]byte, 0, p.size(canonical)), canonical)}, nil, nil
	}
	c, policyErr := policyCluster(pol, canonical, appProtocol)
	e, err = encode(canonical, c)
	return e, policyErr, err
}
