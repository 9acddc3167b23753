package translator

import (
	"fmt"

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
func sortedWire(canonical string, eps []model.Endpoint) model.Encoded {
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
	return model.NewEncoded(canonical, b)
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
