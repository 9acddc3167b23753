package translator

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboard-xds/switchboard/model"
)

// This file is the sidecar stage: the Envoy resources that depend on more
// than one Service. An Envoy sidecar reaches Services through listeners
// keyed by destination port (one listener per port, shared by every
// Service on it, see sidecar_tcp.go), UDP listeners per ClusterIP and port,
// and a DNS table of every Service (sidecar_dns.go). Each such resource is
// built from every Service that contributes to one SidecarPart; the
// pipeline keeps an index from part to Services and rebuilds only the
// parts a change touches. The per-Service clusters and assignments they
// route to come from Service, as for every client.
//
// Names on the wire (documented in the README, "Envoy sidecars"):
//   - listeners VirtualOutboundName, "0.0.0.0_P" and "[::]_P" (TCP port P),
//     "udp_<ClusterIP>_P" (UDP), DNSListenerName;
//   - route configurations "P" (HTTP-family Services on TCP port P);
//   - cluster PassthroughClusterName.

// Sidecar resource names.
const (
	// VirtualOutboundName is the listener that captured outbound TCP
	// arrives at (0.0.0.0:VirtualOutboundPort, use_original_dst): it hands
	// each connection to the listener of its original destination port,
	// or passes it through.
	VirtualOutboundName = "virtualOutbound"
	// VirtualOutboundPort is the port the capture rules redirect outbound
	// TCP to.
	VirtualOutboundPort = 15001
	// PassthroughClusterName is the ORIGINAL_DST cluster: a connection or
	// request for no known Service goes where it was going.
	PassthroughClusterName = "PassthroughCluster"
	// DNSListenerName is the listener of the DNS table (Options.SidecarDNS).
	DNSListenerName = "dns"
)

// SidecarKind says which part of the sidecar stage a SidecarPart is.
type SidecarKind uint8

const (
	// SidecarShared is the part every sidecar has whatever the Services:
	// the virtual outbound listener and the passthrough cluster.
	SidecarShared SidecarKind = iota
	// SidecarTCP is one TCP port number: its listeners and route
	// configuration.
	SidecarTCP
	// SidecarUDP is one UDP port number: a listener per ClusterIP.
	SidecarUDP
	// SidecarDNS is the DNS table.
	SidecarDNS
)

// SidecarPart names one part of the sidecar stage: the resources built
// from every Service that contributes to it (see SidecarParts).
type SidecarPart struct {
	Kind SidecarKind
	// Port is the port number of a SidecarTCP or SidecarUDP part.
	Port int32
}

// String returns "shared", "tcp/P", "udp/P" or "dns".
func (p SidecarPart) String() string {
	switch p.Kind {
	case SidecarShared:
		return "shared"
	case SidecarTCP:
		return "tcp/" + strconv.Itoa(int(p.Port))
	case SidecarUDP:
		return "udp/" + strconv.Itoa(int(p.Port))
	default:
		return "dns"
	}
}

// SidecarParts returns the parts svc contributes to, sorted: one per TCP
// and UDP port that Service translates (see Service), and the DNS table
// for a Service with a ClusterIP or that is headless. A nil Service, or one
// that Service would not translate, contributes to none.
func SidecarParts(svc *model.Service) []SidecarPart {
	tcp, udp := sidecarPorts(svc)
	var out []SidecarPart
	for _, p := range tcp {
		out = append(out, SidecarPart{Kind: SidecarTCP, Port: p.Port})
	}
	for _, p := range udp {
		out = append(out, SidecarPart{Kind: SidecarUDP, Port: p.Port})
	}
	if len(tcp)+len(udp) > 0 && svc.Type != model.TypeExternalName && (len(svc.ClusterIPs) > 0 || svc.Headless) {
		out = append(out, SidecarPart{Kind: SidecarDNS})
	}
	slices.SortFunc(out, func(a, b SidecarPart) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Port, b.Port))
	})
	return out
}

// sidecarPorts returns the TCP and UDP ports of svc that Service gives a
// cluster, so that the sidecar stage only ever routes to clusters that
// exist: for an ExternalName Service its HTTP-family TCP ports only; none
// for a Service that Service refuses.
func sidecarPorts(svc *model.Service) (tcp, udp []*model.Port) {
	if svc == nil || refusal(svc) != "" {
		return nil, nil
	}
	tcp, udp, _ = servedPorts(svc, func(string, string, ...any) Diagnostic { return Diagnostic{} })
	if svc.Type == model.TypeExternalName {
		// Only by Host: an ExternalName Service has no address of its
		// own to match a connection or a datagram on, and no DNS record
		// here (the table has no CNAME); its HTTP ports route to its
		// LOGICAL_DNS cluster.
		return slices.DeleteFunc(tcp, func(p *model.Port) bool { return !IsHTTPPort(p) }), nil
	}
	return tcp, udp
}

// SidecarFacts returns what of svc the sidecar stage reads, so that a
// change that alters nothing of it (an endpoint of a Service with a
// ClusterIP: the most common change) rebuilds no part: svc without the
// endpoints of its ports, except for a headless Service, whose endpoint
// addresses it keeps (its pods are named in DNS and in filter chains).
// The result shares memory with svc and is read-only, like svc.
func SidecarFacts(svc *model.Service) *model.Service {
	if svc == nil {
		return nil
	}
	f := *svc
	f.SliceCount = 0
	f.Ports = make([]model.Port, len(svc.Ports))
	for i, p := range svc.Ports {
		p.Unresolved = false
		if svc.Headless {
			eps := make([]model.Endpoint, len(p.Endpoints))
			for j, e := range p.Endpoints {
				eps[j] = model.Endpoint{Addresses: e.Addresses}
			}
			p.Endpoints = eps
		} else {
			p.Endpoints = nil
		}
		f.Ports[i] = p
	}
	return &f
}

// Sidecar builds the resources of part from svcs, the Services that
// contribute to it (others in svcs are skipped): listeners (and their
// namespace variants), route configurations (and theirs), and for
// SidecarShared the passthrough cluster. The result has EnvoyOnly set.
// It does not depend on the order of svcs; a Service key listed twice is
// used once (the first in key order with the most ports wins, so that
// the choice is deterministic).
func Sidecar(opts Options, part SidecarPart, svcs []*model.Service) (model.Resources, error) {
	if err := opts.Validate(); err != nil {
		return model.Resources{}, err
	}
	in := sidecarInputs(part, svcs)
	var res model.Resources
	var err error
	switch part.Kind {
	case SidecarShared:
		res, err = sharedResources()
	case SidecarTCP:
		res, err = tcpPortResources(opts.domain(), part.Port, in)
	case SidecarUDP:
		res, err = udpPortResources(opts.domain(), part.Port, in)
	case SidecarDNS:
		res, err = dnsResources(opts, in)
	default:
		return model.Resources{}, fmt.Errorf("unknown sidecar part %d", part.Kind)
	}
	if err != nil {
		return model.Resources{}, fmt.Errorf("sidecar %s: %w", part, err)
	}
	res.EnvoyOnly = true
	return res, nil
}

// sidecarInput is one Service as a part sees it: the Service, its port
// on the part (nil for the DNS table), and who may see it.
type sidecarInput struct {
	svc       *model.Service
	port      *model.Port
	visibleTo []string // nil: everyone
}

// sidecarInputs returns the Services of svcs that contribute to part,
// sorted by key, each once.
func sidecarInputs(part SidecarPart, svcs []*model.Service) []sidecarInput {
	var out []sidecarInput
	for _, svc := range svcs {
		tcp, udp := sidecarPorts(svc)
		in := sidecarInput{svc: svc}
		in.visibleTo, _ = visibility(svc)
		switch part.Kind {
		case SidecarTCP:
			in.port = portNumbered(tcp, part.Port)
		case SidecarUDP:
			in.port = portNumbered(udp, part.Port)
		case SidecarDNS:
			if !slices.Contains(SidecarParts(svc), part) {
				continue
			}
		default:
			continue
		}
		if part.Kind != SidecarDNS && in.port == nil {
			continue
		}
		out = append(out, in)
	}
	slices.SortStableFunc(out, func(a, b sidecarInput) int {
		return cmp.Or(cmp.Compare(a.svc.Key.Namespace, b.svc.Key.Namespace), cmp.Compare(a.svc.Key.Name, b.svc.Key.Name))
	})
	return slices.CompactFunc(out, func(a, b sidecarInput) bool { return a.svc.Key == b.svc.Key })
}

func portNumbered(ports []*model.Port, n int32) *model.Port {
	for _, p := range ports {
		if p.Port == n {
			return p
		}
	}
	return nil
}

// mayBeSeenBy reports whether sidecars of namespace ns ("" for the plain
// variant) may see in's Service.
func (in sidecarInput) mayBeSeenBy(ns string) bool {
	return model.Client{Namespace: ns}.MaySee(in.visibleTo, in.svc.Key.Namespace)
}

// variantNamespaces returns the namespaces whose sidecars may see
// something of ins that the plain variant lacks: those of the Services
// (short names) and those a limited Service is visible to, sorted.
func variantNamespaces(ins []sidecarInput) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.svc.Key.Namespace)
		out = append(out, in.visibleTo...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// withVariants builds the plain resource of type t (build("")) and the
// variant of every namespace in nss whose bytes differ from it.
//
// A namespace variant is a listener or route configuration that Envoy
// sidecars of the namespace (node metadata NAMESPACE) get in place of the
// plain resource of the same name: with the short names of the
// namespace's Services, and the Services limited by AnnotationVisibleTo
// that the namespace may see. A namespace without a variant gets the plain
// resource, which has neither. Variants are shared by every sidecar of the
// namespace: their cost is per namespace, not per client.
func withVariants(t model.ResourceType, nss []string, build func(ns string) (model.Encoded, error)) (model.Encoded, []model.Variant, error) {
	plain, err := build("")
	if err != nil {
		return model.Encoded{}, nil, err
	}
	var vs []model.Variant
	for _, ns := range nss {
		v, err := build(ns)
		if err != nil {
			return model.Encoded{}, nil, fmt.Errorf("namespace %s: %w", ns, err)
		}
		if !bytes.Equal(v.Wire, plain.Wire) {
			vs = append(vs, model.Variant{Type: t, View: model.View{Namespace: ns}, Resource: v})
		}
	}
	return plain, vs, nil
}

// IsHTTPPort reports whether Envoy routes a Service port by HTTP Host
// rather than by destination address, as Istio reads a port's protocol:
// appProtocol http, http2, h2c, grpc, kubernetes.io/h2c or
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

// hostNames are the names a Service is reached by in the cluster:
// "S.N.svc.<domain>" (first), "S.N.svc", "S.N", and with short "S", the
// name in its own namespace, as a DNS search path resolves it.
func hostNames(domain string, k model.ServiceKey, short bool) []string {
	full := k.Name + "." + k.Namespace + ".svc." + domain
	names := []string{full, full[:len(full)-len(domain)-1], k.Name + "." + k.Namespace}
	if short {
		names = append(names, k.Name)
	}
	return names
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
