package watcher

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/switchboard-xds/switchboard/model"
)

// This file holds the trimmed copies of Services and EndpointSlices that the
// Store keeps: only the fields that reach the view, normalised (defaults
// applied, lists sorted) so that two objects that publish the same view
// compare equal and an unrelated change is dropped at the door.

// AnnotationPrefix is the prefix of the Service annotations kept in the view.
const AnnotationPrefix = "switchboard.io/"

// svcInfo is the trimmed Service.
type svcInfo struct {
	typ                 string
	headless            bool
	clusterIPs          []string // valid addresses only, in spec order
	externalName        string
	trafficDistribution string
	annotations         map[string]string // nil when none
	ports               []svcPort         // sorted by port, protocol
}

type svcPort struct {
	name           string
	port           int32
	protocol       string
	appProtocol    string
	targetPort     int32
	targetPortName string
}

func trimService(svc *corev1.Service) *svcInfo {
	info := &svcInfo{
		typ:          string(svc.Spec.Type),
		headless:     svc.Spec.ClusterIP == corev1.ClusterIPNone,
		externalName: svc.Spec.ExternalName,
		annotations:  keptAnnotations(svc.Annotations),
		clusterIPs:   clusterIPs(svc),
	}
	if info.typ == "" {
		info.typ = model.TypeClusterIP
	}
	if svc.Spec.TrafficDistribution != nil {
		info.trafficDistribution = *svc.Spec.TrafficDistribution
	}
	for _, p := range svc.Spec.Ports {
		sp := svcPort{
			name:           p.Name,
			port:           p.Port,
			protocol:       protocolOrTCP(p.Protocol),
			appProtocol:    deref(p.AppProtocol),
			targetPort:     p.TargetPort.IntVal,
			targetPortName: p.TargetPort.StrVal,
		}
		if sp.targetPortName != "" {
			sp.targetPort = 0
		} else if sp.targetPort == 0 {
			// The API server defaults an unset targetPort to port; manifests
			// are not defaulted, so do it here.
			sp.targetPort = sp.port
		}
		info.ports = append(info.ports, sp)
	}
	slices.SortStableFunc(info.ports, func(a, b svcPort) int {
		return cmp.Or(cmp.Compare(a.port, b.port), strings.Compare(a.protocol, b.protocol))
	})
	return info
}

// clusterIPs returns the Service's cluster IPs (spec.clusterIPs, else
// spec.clusterIP), keeping only valid addresses, each once; nil for a
// headless Service.
func clusterIPs(svc *corev1.Service) []string {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []string
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Zone() != "" {
			continue // "None", "" or garbage in a manifest
		}
		if s := a.String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (a *svcInfo) equal(b *svcInfo) bool {
	return a.typ == b.typ && a.headless == b.headless && slices.Equal(a.clusterIPs, b.clusterIPs) &&
		a.externalName == b.externalName &&
		a.trafficDistribution == b.trafficDistribution && maps.Equal(a.annotations, b.annotations) &&
		slices.Equal(a.ports, b.ports)
}

func keptAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if strings.HasPrefix(k, AnnotationPrefix) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// sliceInfo is the trimmed EndpointSlice.
type sliceInfo struct {
	service   model.ServiceKey
	ipv6      bool
	ports     []slicePort     // sorted
	endpoints []sliceEndpoint // sorted by address
}

type slicePort struct {
	name     string
	protocol string
	port     int32
}

type sliceEndpoint struct {
	addr        netip.Addr
	ready       bool
	serving     bool
	terminating bool
	zone        string
	node        string
	hostname    string
	ref         targetRef
	forZones    []string // sorted, nil when none
}

// targetRef identifies the object behind an endpoint (usually a Pod); it is
// what joins an endpoint's IPv4 and IPv6 addresses on a dual-stack Service.
type targetRef struct {
	kind, namespace, name string
}

// trimSlice returns the trimmed slice, or nil when the slice cannot serve a
// Service: no kubernetes.io/service-name label, or an address type other
// than IPv4 and IPv6 (FQDN slices are ignored, as kube-proxy ignores them).
func trimSlice(es *discoveryv1.EndpointSlice) *sliceInfo {
	svcName := es.Labels[discoveryv1.LabelServiceName]
	if svcName == "" {
		return nil
	}
	info := &sliceInfo{service: model.ServiceKey{Namespace: es.Namespace, Name: svcName}}
	switch es.AddressType {
	case discoveryv1.AddressTypeIPv4:
	case discoveryv1.AddressTypeIPv6:
		info.ipv6 = true
	default:
		return nil
	}
	for _, p := range es.Ports {
		// A port without a number cannot be dialled; leaving it out makes
		// the Service port Unresolved rather than pointing at port 0.
		if p.Port == nil || *p.Port <= 0 {
			continue
		}
		info.ports = append(info.ports, slicePort{
			name:     deref(p.Name),
			protocol: protocolOrTCP(deref(p.Protocol)),
			port:     *p.Port,
		})
	}
	slices.SortFunc(info.ports, func(a, b slicePort) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.protocol, b.protocol),
			cmp.Compare(a.port, b.port))
	})
	info.ports = slices.Compact(info.ports)
	for i := range es.Endpoints {
		if ep, ok := trimEndpoint(&es.Endpoints[i], info.ipv6); ok {
			info.endpoints = append(info.endpoints, ep)
		}
	}
	slices.SortStableFunc(info.endpoints, func(a, b sliceEndpoint) int { return a.addr.Compare(b.addr) })
	return info
}

// trimEndpoint keeps the first address only: the discovery/v1 API defines no
// meaning for the others and kube-proxy ignores them. An endpoint whose first
// address is not an IP of the slice's family is dropped (the API server
// validates this; manifests are checked and reported by the manifest source).
func trimEndpoint(e *discoveryv1.Endpoint, ipv6 bool) (sliceEndpoint, bool) {
	if len(e.Addresses) == 0 {
		return sliceEndpoint{}, false
	}
	addr, err := netip.ParseAddr(e.Addresses[0])
	if err != nil || addr.Zone() != "" || addr.Is6() != ipv6 || addr.Is4In6() {
		return sliceEndpoint{}, false
	}
	// As documented for discovery/v1: unknown ready means ready, unknown
	// serving means the same as ready, unknown terminating means not.
	ready := e.Conditions.Ready == nil || *e.Conditions.Ready
	out := sliceEndpoint{
		addr:        addr,
		ready:       ready,
		serving:     ready,
		terminating: deref(e.Conditions.Terminating),
		zone:        deref(e.Zone),
		node:        deref(e.NodeName),
		hostname:    deref(e.Hostname),
	}
	if e.Conditions.Serving != nil {
		out.serving = *e.Conditions.Serving
	}
	if r := e.TargetRef; r != nil {
		out.ref = targetRef{kind: r.Kind, namespace: r.Namespace, name: r.Name}
	}
	if e.Hints != nil {
		for _, z := range e.Hints.ForZones {
			out.forZones = append(out.forZones, z.Name)
		}
		slices.Sort(out.forZones)
		out.forZones = slices.Compact(out.forZones)
	}
	return out, true
}

func (a *sliceInfo) equal(b *sliceInfo) bool {
	return a.service == b.service && a.ipv6 == b.ipv6 && slices.Equal(a.ports, b.ports) &&
		slices.EqualFunc(a.endpoints, b.endpoints, func(x, y sliceEndpoint) bool {
			return x.addr == y.addr && x.ready == y.ready && x.serving == y.serving &&
				x.terminating == y.terminating && x.zone == y.zone && x.node == y.node &&
				x.hostname == y.hostname && x.ref == y.ref && slices.Equal(x.forZones, y.forZones)
		})
}

func protocolOrTCP[T ~string](p T) string {
	if p == "" {
		return string(corev1.ProtocolTCP)
	}
	return string(p)
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
