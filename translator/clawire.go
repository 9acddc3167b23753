package translator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// encodeCLA is encode for an assignment built as a message (any view that
// sortedWire does not take: a rolling update, zone and Envoy variants,
// dual-stack endpoints). It writes the fields the translator sets by hand,
// the same bytes as protobuf-go's deterministic marshalling (see
// TestEncodeCLA), at a fraction of its cost; an assignment with any other
// field set (see claPlain) is marshalled by protobuf-go.
func encodeCLA(cla *endpointv3.ClusterLoadAssignment) (Encoded, error) {
	name := cla.GetClusterName()
	if !claPlain(cla) {
		return encode(name, cla)
	}
	var z claSizes
	b := z.appendCLA(make([]byte, 0, z.measure(cla)), cla)
	return Encoded{Name: name, Wire: b}, nil
}

// Field numbers that appendCLA writes besides those of sortedWire.
const (
	llePriority       = 5 // LocalityLbEndpoints.priority
	endpointAddresses = 4 // Endpoint.additional_addresses
	additionalAddress = 1 // Endpoint.AdditionalAddress.address
)

// claPlain reports whether cla sets only the fields appendCLA writes:
// cluster name and localities; per locality its Locality, endpoints,
// weight and priority; per endpoint its health status and Endpoint, whose
// address and additional addresses are TCP socket addresses with a port
// number. Strings must be valid UTF-8 as well, which the translator checks
// before it builds an assignment (validEndpoint).
func claPlain(cla *endpointv3.ClusterLoadAssignment) bool {
	if cla.Policy != nil || len(cla.NamedEndpoints) > 0 {
		return false
	}
	for _, l := range cla.Endpoints {
		if l == nil || l.Metadata != nil || l.LbConfig != nil || l.Proximity != nil {
			return false
		}
		for _, lb := range l.LbEndpoints {
			if lb == nil || lb.Metadata != nil || lb.LoadBalancingWeight != nil {
				return false
			}
			host, ok := lb.HostIdentifier.(*endpointv3.LbEndpoint_Endpoint)
			if !ok || host.Endpoint == nil {
				return false
			}
			ep := host.Endpoint
			if ep.HealthCheckConfig != nil || ep.Hostname != "" || ep.ObservabilityName != "" || !plainAddress(ep.Address) {
				return false
			}
			for _, a := range ep.AdditionalAddresses {
				if a == nil || !plainAddress(a.Address) {
					return false
				}
			}
		}
	}
	return true
}

// plainAddress reports whether a is a TCP socket address with a port
// number and nothing else.
func plainAddress(a *corev3.Address) bool {
	sa, ok := a.GetAddress().(*corev3.Address_SocketAddress)
	if !ok || sa.SocketAddress == nil {
		return false
	}
	s := sa.SocketAddress
	_, port := s.PortSpecifier.(*corev3.SocketAddress_PortValue)
	return port && s.Protocol == corev3.SocketAddress_TCP && s.ResolverName == "" && !s.Ipv4Compat && s.NetworkNamespaceFilepath == ""
}

// claSizes holds the sizes of an assignment's localities and endpoints,
// measured once in the order appendCLA writes them: a length-delimited
// message needs its size before its bytes, and measuring each level anew
// would measure an endpoint once per level above it.
type claSizes struct {
	// sizes holds, per locality, its LocalityLbEndpoints size, then the
	// Endpoint size of each of its endpoints.
	sizes []int
	next  int
}

// measure records the sizes of cla and returns its encoded size.
func (z *claSizes) measure(cla *endpointv3.ClusterLoadAssignment) int {
	n := 0
	for _, l := range cla.Endpoints {
		n += 1 + len(l.LbEndpoints)
	}
	z.sizes = make([]int, 0, n)
	total := 0
	if cla.ClusterName != "" {
		total += sizeMessage(claClusterName, len(cla.ClusterName))
	}
	for _, l := range cla.Endpoints {
		at := len(z.sizes)
		z.sizes = append(z.sizes, 0)
		lle := 0
		if l.Locality != nil {
			lle += sizeMessage(lleLocality, locSize(l.Locality))
		}
		for _, lb := range l.LbEndpoints {
			ep := epSize(lb.GetEndpoint())
			z.sizes = append(z.sizes, ep)
			lle += sizeMessage(lleLbEndpoints, lbSize(lb, ep))
		}
		if l.LoadBalancingWeight != nil {
			lle += sizeMessage(lleWeight, uint32ValueSize(l.LoadBalancingWeight))
		}
		if l.Priority != 0 {
			lle += protowire.SizeTag(llePriority) + protowire.SizeVarint(uint64(l.Priority))
		}
		z.sizes[at] = lle
		total += sizeMessage(claEndpoints, lle)
	}
	return total
}

// pop returns the next size measure recorded.
func (z *claSizes) pop() int {
	n := z.sizes[z.next]
	z.next++
	return n
}

// appendCLA writes cla, whose sizes measure recorded. Localities write
// locality, lb_endpoints, load_balancing_weight, then priority:
// field-number order (the lb_config oneof is never set).
func (z *claSizes) appendCLA(b []byte, cla *endpointv3.ClusterLoadAssignment) []byte {
	if cla.ClusterName != "" {
		b = appendString(b, claClusterName, cla.ClusterName)
	}
	for _, l := range cla.Endpoints {
		b = appendHeader(b, claEndpoints, z.pop())
		if l.Locality != nil {
			b = appendHeader(b, lleLocality, locSize(l.Locality))
			b = appendLocalityFields(b, l.Locality.Region, l.Locality.Zone, l.Locality.SubZone)
		}
		for _, lb := range l.LbEndpoints {
			ep := z.pop()
			b = appendHeader(b, lleLbEndpoints, lbSize(lb, ep))
			b = appendLb(b, lb, ep)
		}
		if l.LoadBalancingWeight != nil {
			b = appendHeader(b, lleWeight, uint32ValueSize(l.LoadBalancingWeight))
			if v := l.LoadBalancingWeight.Value; v != 0 {
				b = protowire.AppendTag(b, uint32ValueValue, protowire.VarintType)
				b = protowire.AppendVarint(b, uint64(v))
			}
		}
		if l.Priority != 0 {
			b = protowire.AppendTag(b, llePriority, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(l.Priority))
		}
	}
	return b
}

func uint32ValueSize(w *wrapperspb.UInt32Value) int {
	if w.Value == 0 {
		return 0
	}
	return protowire.SizeTag(uint32ValueValue) + protowire.SizeVarint(uint64(w.Value))
}

func locSize(l *corev3.Locality) int { return localityFieldsSize(l.Region, l.Zone, l.SubZone) }

// lbSize is the size of lb, whose Endpoint is ep bytes.
func lbSize(lb *endpointv3.LbEndpoint, ep int) int {
	n := sizeMessage(lbEndpoint, ep)
	if lb.HealthStatus != 0 {
		n += protowire.SizeTag(lbHealthStatus) + protowire.SizeVarint(uint64(lb.HealthStatus))
	}
	return n
}

// appendLb writes health_status, then endpoint (ep bytes): protobuf-go
// writes the host_identifier oneof after the plain fields (see sortedWire).
func appendLb(b []byte, lb *endpointv3.LbEndpoint, ep int) []byte {
	if lb.HealthStatus != 0 {
		b = protowire.AppendTag(b, lbHealthStatus, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(lb.HealthStatus))
	}
	b = appendHeader(b, lbEndpoint, ep)
	e := lb.GetEndpoint()
	if e.Address != nil {
		b = appendHeader(b, endpointAddress, addrSize(e.Address))
		b = appendAddr(b, e.Address)
	}
	for _, a := range e.AdditionalAddresses {
		n := addrSize(a.Address)
		b = appendHeader(b, endpointAddresses, sizeMessage(additionalAddress, n))
		b = appendHeader(b, additionalAddress, n)
		b = appendAddr(b, a.Address)
	}
	return b
}

func epSize(ep *endpointv3.Endpoint) int {
	n := 0
	if ep.Address != nil {
		n += sizeMessage(endpointAddress, addrSize(ep.Address))
	}
	for _, a := range ep.AdditionalAddresses {
		n += sizeMessage(endpointAddresses, sizeMessage(additionalAddress, addrSize(a.Address)))
	}
	return n
}

// addrSize is the size of a plain Address message (see plainAddress).
func addrSize(a *corev3.Address) int {
	s := a.GetSocketAddress()
	return sizeMessage(addressSocket, socketSize(s.GetAddress(), s.GetPortValue()))
}

// appendAddr writes a plain Address message's fields.
func appendAddr(b []byte, a *corev3.Address) []byte {
	s := a.GetSocketAddress()
	b = appendHeader(b, addressSocket, socketSize(s.GetAddress(), s.GetPortValue()))
	return appendSocket(b, s.GetAddress(), s.GetPortValue())
}
