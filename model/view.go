package model

import (
	"cmp"
	"maps"
	"slices"
)

// This file holds the trimmed, per-Service view that the watcher publishes and
// the translator consumes. Values of these types are immutable once published:
// the watcher builds a new *Service for every change and never mutates one it
// has handed out, so consumers may keep and share them without copying.

// ServiceKey names a Service.
type ServiceKey struct {
	Namespace string
	Name      string
}

// String returns "namespace/name".
func (k ServiceKey) String() string { return k.Namespace + "/" + k.Name }

// Compare orders keys by namespace, then name: -1, 0 or +1.
func (k ServiceKey) Compare(o ServiceKey) int {
	return cmp.Or(cmp.Compare(k.Namespace, o.Namespace), cmp.Compare(k.Name, o.Name))
}

// Service types as in core/v1 ServiceSpec.Type.
const (
	TypeClusterIP    = "ClusterIP"
	TypeNodePort     = "NodePort"
	TypeLoadBalancer = "LoadBalancer"
	TypeExternalName = "ExternalName"
)

// Service is the trimmed view of one Service joined with its EndpointSlices
// (by the kubernetes.io/service-name label). Only the fields that the
// translator needs are kept, so that unrelated changes to the Kubernetes
// objects (status, managed fields, unrelated labels) produce no update.
type Service struct {
	Key ServiceKey
	// Type is the Service type (TypeClusterIP, ...); "" is read as ClusterIP.
	Type string
	// Headless is true for clusterIP: None.
	Headless bool
	// ClusterIPs are spec.clusterIPs (spec.clusterIP when that list is
	// empty, as in manifests written before dual-stack), valid IP
	// addresses only, primary first: one per IP family. Empty for a
	// headless or ExternalName Service, and for a Service not yet given an
	// address.
	ClusterIPs []string
	// ExternalName is spec.externalName for TypeExternalName.
	ExternalName string
	// TrafficDistribution is spec.trafficDistribution ("" when unset).
	TrafficDistribution string
	// Annotations keeps only annotations under the "switchboard.io/" prefix.
	Annotations map[string]string
	// Ports are the Service ports sorted by Port, then Protocol.
	Ports []Port
	// SliceCount is the number of EndpointSlices that name this Service. It
	// tells "no slices yet" (0) from "slices with no endpoints".
	SliceCount int
}

// Port is one Service port with the endpoints that serve it.
type Port struct {
	Name        string
	Port        int32
	Protocol    string // TCP, UDP or SCTP; "" is read as TCP
	AppProtocol string
	// TargetPort is the Service's targetPort: a number (TargetPortName == "")
	// or a name. It is informational: endpoint ports come from the slices.
	TargetPort     int32
	TargetPortName string
	// Endpoints are the endpoints of every slice whose port list carries a port
	// with this port's Name and Protocol, with the port number that slice gives.
	// One entry per (address, port), in the one endpoint order: by
	// Addresses[0] as a number (netip.Addr.Compare: every IPv4 address before
	// every IPv6 one, 10.0.0.9 before 10.0.0.10), then by Port. The watcher
	// produces this order (TestStoreEndpointOrder) and the translator relies
	// on it for its fast path; a view in another order is still translated
	// correctly, only slower.
	Endpoints []Endpoint
	// Unresolved is true when the Service has slices but none of them carries a
	// port with this port's Name and Protocol.
	Unresolved bool
}

// Endpoint is one backend of a Service port.
type Endpoint struct {
	// Addresses are the endpoint's IP addresses; the first is its primary.
	// Addresses of one pod seen in an IPv4 and an IPv6 slice are merged here
	// when the slices agree on the target (see Hostname/TargetRef).
	Addresses []string
	// Port is the resolved port number for this endpoint.
	Port int32
	// Conditions as in discovery/v1; nil conditions are read the way
	// Kubernetes documents them (ready and serving unknown means true,
	// terminating unknown means false).
	Ready       bool
	Serving     bool
	Terminating bool
	Zone        string
	// Region is the topology.kubernetes.io/region label of the endpoint's
	// Node, when Nodes are watched (Options.NodeRegions); "" otherwise.
	Region   string
	NodeName string
	Hostname string
	// ForZones holds the topology hints (hints.forZones[].name), sorted.
	ForZones []string
}

// Equal reports whether two views are the same, field by field (nil equals
// only nil; a nil list equals an empty one). It is the one equality of
// views: the watcher publishes a Service only when its view changed, and
// the sidecar stage rebuilds only for facts that changed.
func Equal(a, b *Service) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Key == b.Key && a.Type == b.Type && a.Headless == b.Headless &&
		slices.Equal(a.ClusterIPs, b.ClusterIPs) && a.ExternalName == b.ExternalName && a.TrafficDistribution == b.TrafficDistribution &&
		maps.Equal(a.Annotations, b.Annotations) && a.SliceCount == b.SliceCount &&
		slices.EqualFunc(a.Ports, b.Ports, portEqual)
}

func portEqual(a, b Port) bool {
	return a.Name == b.Name && a.Port == b.Port && a.Protocol == b.Protocol &&
		a.AppProtocol == b.AppProtocol && a.TargetPort == b.TargetPort &&
		a.TargetPortName == b.TargetPortName && a.Unresolved == b.Unresolved &&
		slices.EqualFunc(a.Endpoints, b.Endpoints, endpointEqual)
}

func endpointEqual(a, b Endpoint) bool {
	return slices.Equal(a.Addresses, b.Addresses) && a.Port == b.Port && a.Ready == b.Ready &&
		a.Serving == b.Serving && a.Terminating == b.Terminating && a.Zone == b.Zone &&
		a.Region == b.Region && a.NodeName == b.NodeName && a.Hostname == b.Hostname && slices.Equal(a.ForZones, b.ForZones)
}
