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
	b := appendCLA(make([]byte, 0, claSize(cla)), cla)
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

func claSize(cla *endpointv3.ClusterLoadAssignment) int {
	n := 0
	if cla.ClusterName != "" {
		n += sizeMessage(claClusterName, len(cla.ClusterName))
	}
	for _, l := range cla.Endpoints {
		n += sizeMessage(claEndpoints, lleSize(l))
	}
	return n
}

func appendCLA(b []byte, cla *endpointv3.ClusterLoadAssignment) []byte {
	if cla.ClusterName != "" {
		b = appendString(b, claClusterName, cla.ClusterName)
	}
	for _, l := range cla.Endpoints {
		b = appendHeader(b, claEndpoints, lleSize(l))
		b = appendLLE(b, l)
	}
	return b
}

func lleSize(l *endpointv3.LocalityLbEndpoints) int {
	n := 0
	if l.Locality != nil {
		n += sizeMessage(lleLocality, locSize(l.Locality))
	}
	for _, lb := range l.LbEndpoints {
		n += sizeMessage(lleLbEndpoints, lbSize(lb))
	}
	if l.LoadBalancingWeight != nil {
		n += sizeMessage(lleWeight, uint32ValueSize(l.LoadBalancingWeight))
	}
	if l.Priority != 0 {
		n += protowire.SizeTag(llePriority) + protowire.SizeVarint(uint64(l.Priority))
	}
	return n
}

// appendLLE writes locality, lb_endpoints, load_balancing_weight, then
// priority: field-number order (the lb_config oneof is never set).
func appendLLE(b []byte, l *endpointv3.LocalityLbEndpoints) []byte {
	if l.Locality != nil {
		b = appendHeader(b, lleLocality, locSize(l.Locality))
		b = appendLocalityWire(b, l.Locality)
	}
	for _, lb := range l.LbEndpoints {
		b = appendHeader(b, lleLbEndpoints, lbSize(lb))
		b = appendLb(b, lb)
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
	return b
}

func uint32ValueSize(w *wrapperspb.UInt32Value) int {
	if w.Value == 0 {
		return 0
	}
	return protowire.SizeTag(uint32ValueValue) + protowire.SizeVarint(uint64(w.Value))
}

func locSize(l *corev3.Locality) int {
	n := 0
	for _, s := range [...]string{l.Region, l.Zone, l.SubZone} {
		if s != "" {
			n += sizeMessage(localityRegion, len(s)) // every field number < 16
		}
	}
	return n
}

func appendLocalityWire(b []byte, l *corev3.Locality) []byte {
	if l.Region != "" {
		b = appendString(b, localityRegion, l.Region)
	}
	if l.Zone != "" {
		b = appendString(b, localityZone, l.Zone)
	}
	if l.SubZone != "" {
		b = appendString(b, localitySubZone, l.SubZone)
	}
	return b
}

func lbSize(lb *endpointv3.LbEndpoint) int {
	n := sizeMessage(lbEndpoint, epSize(lb.GetEndpoint()))
	if lb.HealthStatus != 0 {
		n += protowire.SizeTag(lbHealthStatus) + protowire.SizeVarint(uint64(lb.HealthStatus))
	}
	return n
}

// appendLb writes health_status, then endpoint: protobuf-go writes the
// host_identifier oneof after the plain fields (see sortedWire).
func appendLb(b []byte, lb *endpointv3.LbEndpoint) []byte {
	if lb.HealthStatus != 0 {
		b = protowire.AppendTag(b, lbHealthStatus, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(lb.HealthStatus))
	}
	ep := lb.GetEndpoint()
	b = appendHeader(b, lbEndpoint, epSize(ep))
	return appendEp(b, ep)
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

func appendEp(b []byte, ep *endpointv3.Endpoint) []byte {
	if ep.Address != nil {
		b = appendHeader(b, endpointAddress, addrSize(ep.Address))
		b = appendAddr(b, ep.Address)
	}
	for _, a := range ep.AdditionalAddresses {
		n := addrSize(a.Address)
		b = appendHeader(b, endpointAddresses, sizeMessage(additionalAddress, n))
		b = appendHeader(b, additionalAddress, n)
		b = appendAddr(b, a.Address)
	}
	return b
}

// addrSize is the size of a plain Address message (see plainAddress).
func addrSize(a *corev3.Address) int {
	return sizeMessage(addressSocket, sockSize(a.GetSocketAddress()))
}

func sockSize(s *corev3.SocketAddress) int {
	n := protowire.SizeTag(socketPortValue) + protowire.SizeVarint(uint64(s.GetPortValue()))
	if s.Address != "" {
		n += sizeMessage(socketAddress, len(s.Address))
	}
	return n
}

// appendAddr writes a plain address: address, then the port, which is in
// the port_specifier oneof and so written even when 0.
func appendAddr(b []byte, a *corev3.Address) []byte {
	s := a.GetSocketAddress()
	b = appendHeader(b, addressSocket, sockSize(s))
	if s.Address != "" {
		b = appendString(b, socketAddress, s.Address)
	}
	b = protowire.AppendTag(b, socketPortValue, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(s.GetPortValue()))
}
