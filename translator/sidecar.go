package translator

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboard-xds/switchboard/model"
)

// This file is the sidecar stage: the Envoy resources of a transparent
// sidecar that are not the per-Service clusters, assignments and routes
// every client gets. Their shape makes the cost of a change the size of
// the change:
//
//   - one outbound listener per ClusterIP and TCP port, "<IP>_<P>"
//     (bind_to_port false, handed connections by the virtual outbound
//     listener by original destination), whose one chain is a tcp_proxy
//     to the Service port's cluster or, for an HTTP-family port, an HTTP
//     connection manager over RDS with the port's own route configuration
//     (its Envoy variant, one "*" virtual host: see envoyRouteWire); a
//     listener per ClusterIP and UDP port, "udp_<IP>_<P>" (sidecar_udp.go);
//     so a new Service is its own listeners, cluster and route, and a
//     Service limited by AnnotationVisibleTo is sent only to the sidecars
//     that may see it (Resources.Visibility of its parts);
//   - one DNS listener whose table holds each Service's full name only (the
//     pod's resolv.conf search path turns "S", "S.N" and "S.N.svc" into it),
//     answering a ClusterIP Service with its ClusterIPs and a headless or
//     ExternalName Service through its cluster, which Envoy's DNS filter
//     reads at query time, so pod churn never rewrites the table
//     (sidecar_dns.go);
//   - the virtual outbound listener and the passthrough cluster, shared by
//     every sidecar (sidecar_tcp.go).
//
// No resource has a namespace variant. Each resource is built from the
// Services that contribute to one SidecarPart; the pipeline keeps an index
// from part to Services and rebuilds only the parts a change touches.
//
// Names on the wire (documented in docs/envoy-sidecars.md and
// docs/names.md): listeners VirtualOutboundName, "<IP>_<P>" (TCP),
// "udp_<IP>_<P>" (UDP), DNSListenerName; cluster PassthroughClusterName.
// IPv6 addresses are written without brackets ("fd00::1_80").

// Sidecar resource names.
const (
	// VirtualOutboundName is the listener that captured outbound TCP
	// arrives at (0.0.0.0:VirtualOutboundPort, use_original_dst): it hands
	// each connection to the listener of its original destination, or
	// passes it through.
	VirtualOutboundName = "virtualOutbound"
	// VirtualOutboundPort is the port the capture rules redirect outbound
	// TCP to.
	VirtualOutboundPort = 15001
	// PassthroughClusterName is the ORIGINAL_DST cluster: a connection for
	// no known Service goes where it was going.
	PassthroughClusterName = "PassthroughCluster"
	// DNSListenerName is the listener of the DNS table at the IPv4 address
	// of Options.SidecarDNS, DNS6ListenerName at its IPv6 one.
	DNSListenerName  = "dns"
	DNS6ListenerName = "dns6"
)

// SidecarKind says which part of the sidecar stage a SidecarPart is.
type SidecarKind uint8

const (
	// SidecarShared is the part every sidecar has whatever the Services:
	// the virtual outbound listener and the passthrough cluster.
	SidecarShared SidecarKind = iota
	// SidecarTCP is one ClusterIP and TCP port: its outbound listener.
	SidecarTCP
	// SidecarUDP is one ClusterIP and UDP port: its transparent listener.
	SidecarUDP
	// SidecarDNS is the DNS table.
	SidecarDNS
)

// SidecarPart names one part of the sidecar stage: the resources built
// from every Service that contributes to it (see SidecarParts). It is
// comparable, a map key.
type SidecarPart struct {
	Kind SidecarKind
	// Addr and Port are the ClusterIP and port number of a SidecarTCP or
	// SidecarUDP part.
	Addr netip.Addr
	Port int32
}

// String returns "shared", "tcp/IP:P", "udp/IP:P" (IPv6 in brackets) or
// "dns".
func (p SidecarPart) String() string {
	switch p.Kind {
	case SidecarShared:
		return "shared"
	case SidecarTCP:
		return "tcp/" + netip.AddrPortFrom(p.Addr, uint16(p.Port)).String()
	case SidecarUDP:
		return "udp/" + netip.AddrPortFrom(p.Addr, uint16(p.Port)).String()
	default:
		return "dns"
	}
}

// SidecarParts returns the parts svc contributes to, sorted: one per
// ClusterIP and TCP or UDP port that gets a listener (see sidecarPorts),
// and the DNS table when svc has records in it (see dnsRecordsOf). A nil
// Service, or one that Service would not translate, contributes to none.
func SidecarParts(svc *model.Service) []SidecarPart {
	tcp, udp := sidecarPorts(svc)
	var out []SidecarPart
	for _, a := range addrs(clusterIPsOf(svc)) {
		for _, p := range tcp {
			out = append(out, SidecarPart{Kind: SidecarTCP, Addr: a, Port: p.Port})
		}
		for _, p := range udp {
			out = append(out, SidecarPart{Kind: SidecarUDP, Addr: a, Port: p.Port})
		}
	}
	if inDNSTable(svc) {
		out = append(out, SidecarPart{Kind: SidecarDNS})
	}
	slices.SortFunc(out, compareParts)
	return slices.Compact(out)
}

func compareParts(a, b SidecarPart) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
}

// clusterIPsOf returns the ClusterIPs of svc that a listener may bind to:
// none for a headless or ExternalName Service.
func clusterIPsOf(svc *model.Service) []string {
	if svc == nil || svc.Headless || svc.Type == model.TypeExternalName {
		return nil
	}
	return svc.ClusterIPs
}

// servedByService returns the TCP and UDP ports of svc that Service gives a
// cluster, so that the sidecar stage only ever routes to clusters that
// exist: none for a Service that Service refuses, no UDP for an
// ExternalName Service.
func servedByService(svc *model.Service) (tcp, udp []*model.Port) {
	if svc == nil || refusal(svc) != "" {
		return nil, nil
	}
	tcp, udp, _ = servedPorts(svc, func(string, string, ...any) Diagnostic { return Diagnostic{} })
	if svc.Type == model.TypeExternalName {
		udp = nil
	}
	return tcp, udp
}

// sidecarPorts returns the TCP and UDP ports of svc that get listeners:
// those Service gives a cluster, of a Service with a ClusterIP (a
// headless Service's pods are reached through the passthrough cluster; an
// ExternalName Service's name resolves to the external address, see
// dnsRecordsOf).
func sidecarPorts(svc *model.Service) (tcp, udp []*model.Port) {
	if len(clusterIPsOf(svc)) == 0 {
		return nil, nil
	}
	return servedByService(svc)
}

// SidecarFacts returns what of svc the sidecar stage reads, so that a
// change that alters nothing of it (any endpoint change, headless
// Services' included: the most common change) rebuilds no part: svc
// without the endpoints of its ports. The result shares memory with svc
// and is read-only, like svc.
func SidecarFacts(svc *model.Service) *model.Service {
	if svc == nil {
		return nil
	}
	f := *svc
	f.SliceCount = 0
	f.Ports = make([]model.Port, len(svc.Ports))
	for i, p := range svc.Ports {
		p.Unresolved = false
		p.Endpoints = nil
		f.Ports[i] = p
	}
	return &f
}

// Sidecar builds the resources of part from svcs, the Services that
// contribute to it (others in svcs are skipped): listeners, and for
// SidecarShared the passthrough cluster. The result has EnvoyOnly set,
// and for a TCP or UDP part of a Service limited by AnnotationVisibleTo
// the Visibility of that Service (see partVisibility). It does not depend
// on the order of svcs; when two Services claim one ClusterIP and port
// (possible in manifests only), the first in key order wins.
func Sidecar(opts Options, part SidecarPart, svcs []*model.Service) (model.Resources, error) {
	if err := opts.Validate(); err != nil {
		return model.Resources{}, err
	}
	var res model.Resources
	var err error
	switch part.Kind {
	case SidecarShared:
		res, err = sharedResources()
	case SidecarTCP, SidecarUDP:
		winner := SidecarWinner(part, svcs)
		if winner == nil {
			return model.Resources{EnvoyOnly: true}, nil
		}
		all, lerr := SidecarListeners(opts, winner)
		if lerr != nil {
			return model.Resources{}, lerr
		}
		return all[part], nil
	case SidecarDNS:
		var records []DNSRecords
		for _, svc := range svcs {
			r, rerr := NewDNSRecords(opts, svc)
			if rerr != nil {
				return model.Resources{}, fmt.Errorf("sidecar %s: %w", part, rerr)
			}
			if r.Wire != nil {
				records = append(records, r)
			}
		}
		res, err = DNSListener(opts, records)
	default:
		return model.Resources{}, fmt.Errorf("unknown sidecar part %d", part.Kind)
	}
	if err != nil {
		return model.Resources{}, fmt.Errorf("sidecar %s: %w", part, err)
	}
	res.EnvoyOnly = true
	return res, nil
}

// sidecarInput is the Service a TCP or UDP part is built from, and its
// port on the part.
type sidecarInput struct {
	svc  *model.Service
	port *model.Port
}

// SidecarWinner returns the Service of svcs whose resources a TCP or UDP
// part gets: the first in key order that contributes to it (two Services
// claim one ClusterIP and port in manifests only); nil when none does.
func SidecarWinner(part SidecarPart, svcs []*model.Service) *model.Service {
	var best *model.Service
	for _, svc := range svcs {
		if best != nil && best.Key.Compare(svc.Key) <= 0 {
			continue
		}
		if slices.Contains(SidecarParts(svc), part) {
			best = svc
		}
	}
	return best
}

// SidecarListeners builds every TCP and UDP part of svc as Sidecar would
// with svc the part's winner: for each ClusterIP, the outbound listener of
// each TCP port and the listener of each UDP port, each part's resources
// with EnvoyOnly and the Service's Visibility (partVisibility). It costs
// the Service's ports once, however many they are, where building each
// part alone would cost them once per part.
func SidecarListeners(opts Options, svc *model.Service) (map[SidecarPart]model.Resources, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	tcp, udp := sidecarPorts(svc)
	ips := addrs(clusterIPsOf(svc))
	out := make(map[SidecarPart]model.Resources, len(ips)*(len(tcp)+len(udp)))
	for _, a := range ips {
		for _, set := range []struct {
			kind  SidecarKind
			ports []*model.Port
			build func(string, SidecarPart, sidecarInput) (model.Resources, error)
		}{{SidecarTCP, tcp, tcpResources}, {SidecarUDP, udp, udpResources}} {
			for _, p := range set.ports {
				part := SidecarPart{Kind: set.kind, Addr: a, Port: p.Port}
				res, err := set.build(opts.domain(), part, sidecarInput{svc: svc, port: p})
				if err != nil {
					return nil, fmt.Errorf("sidecar %s: %w", part, err)
				}
				res.EnvoyOnly = true
				out[part] = res
			}
		}
	}
	return out, nil
}

// partVisibility is the Resources.Visibility of a part built from svc:
// nil for a Service everyone may see; else the namespaces it is visible
// to and its own, since a part's group is not keyed by the Service and
// the cache cannot tell the Service's namespace from it.
func partVisibility(svc *model.Service) []string {
	visibleTo, _ := visibility(svc)
	if len(visibleTo) == 0 {
		return nil
	}
	out := append(slices.Clone(visibleTo), svc.Key.Namespace)
	slices.Sort(out)
	return slices.Compact(out)
}

// sidecarListenerName is "<IP>_<P>", the outbound listener of a ClusterIP
// and TCP port; with prefix "udp_", the UDP listener's.
func sidecarListenerName(prefix string, a netip.Addr, port int32) string {
	return prefix + a.String() + "_" + strconv.Itoa(int(port))
}

// IsHTTPPort reports whether Envoy serves a Service port with an HTTP
// connection manager rather than a TCP proxy, as Istio reads a port's
// protocol: appProtocol http, http2, h2c, grpc, kubernetes.io/h2c or
// kubernetes.io/ws; or, without an appProtocol, a port name that is, or
// starts with "<p>-" for, p in http, http2, grpc.
func IsHTTPPort(p *model.Port) bool {
	switch p.AppProtocol {
	case "http", "http2", "h2c", "grpc", "kubernetes.io/h2c", "kubernetes.io/ws":
		return true
	case "":
	default:
		return false
	}
	for _, pre := range []string{"http", "http2", "grpc"} {
		if p.Name == pre || strings.HasPrefix(p.Name, pre+"-") {
			return true
		}
	}
	return false
}

// addrs parses ips, keeping the valid ones.
func addrs(ips []string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}
