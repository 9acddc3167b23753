package translator

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Client is everything the server decides per client, and this file is the
// one place it is decided. From the node of a client's first request:
//
//   - Class (ClientClass of node.user_agent_name) picks the cluster and
//     assignment variants shaped for that kind of client (ClusterVariant,
//     ClassAssignment);
//   - Zone (node.locality.zone) picks the zone variants of assignments
//     (ZoneAssignment); with a class too, the composite ClassAssignment;
//   - Namespace (node metadata NAMESPACE) lets a listener name without a dot
//     in its host ("S:P", "S") stand for a Service of that namespace, as a
//     DNS search path would (Resolve), and says which Services limited by
//     AnnotationVisibleTo the client may see (MaySee).
//
// And for a listener name a client subscribes to: an alias of a Service
// port (Resources.Aliases, or a short name Resolve expanded) gets
// AliasListener, built when first asked for; a name that names no Service
// gets UnknownListener, so the client fails fast. Every other resource is
// the same for every client.
type Client struct {
	Class     string
	Zone      string
	Namespace string
}

// ClientOf returns the Client a node describes; a nil node is a Client
// with nothing special.
func ClientOf(node *corev3.Node) Client {
	return Client{
		Class:     ClientClass(node.GetUserAgentName()),
		Zone:      node.GetLocality().GetZone(),
		Namespace: node.GetMetadata().GetFields()["NAMESPACE"].GetStringValue(),
	}
}

// Resolve returns the listener name that name stands for for this client: a
// name without a dot in its host ("S:P", "S") is a Service in the client's
// own namespace ("S.N:P", "S.N"); any other name, an xdstp:// or other URI
// name among them, or any name for a client without a namespace, stands
// for itself, as does every name for an Envoy client (its listener names,
// "dns" among them, are names of the sidecar stage, never short names).
func (c Client) Resolve(name string) string {
	if c.Namespace == "" || c.Class == ClassEnvoy || strings.Contains(name, "/") {
		return name
	}
	host, port, hasPort := strings.Cut(name, ":")
	if host == "" || strings.Contains(host, ".") {
		return name
	}
	if hasPort {
		return host + "." + c.Namespace + ":" + port
	}
	return host + "." + c.Namespace
}

// MaySee reports whether this client may see a Service of namespace
// serviceNamespace whose Resources.Visibility is visibleTo: always when
// visibleTo is empty (no AnnotationVisibleTo); else only a client in the
// Service's own namespace or in one listed. A client without a namespace
// sees no limited Service.
//
// The namespace is whatever the node says, so this is only as strong as
// the node's word: with mutual TLS the server checks it against the
// client's SPIFFE identity (internal/xdsauth) and visibility holds; without,
// a client can claim any namespace and visibility is advisory only.
func (c Client) MaySee(visibleTo []string, serviceNamespace string) bool {
	if len(visibleTo) == 0 {
		return true
	}
	if c.Namespace == "" {
		return false
	}
	return c.Namespace == serviceNamespace || slices.Contains(visibleTo, c.Namespace)
}

// ClassCCore is the client class of gRPC C-core (node user_agent_name
// "gRPC C-core", followed by the platform and wrapping language, e.g.
// "gRPC C-core linux Python"): Debian's python3-grpcio 1.51 crashes (SIGSEGV) on a
// ring_hash cluster, with or without the custom LB config, so clients of
// this class get ring_hash clusters as round robin (see ClusterVariant).
const ClassCCore = "c-core"

// ClassEnvoy is the client class of Envoy, whose node user_agent_name is
// "envoy". Envoy reads an endpoint's health_status, so clients of this class
// get serving, terminating endpoints as DRAINING (see ClassAssignment).
const ClassEnvoy = "envoy"

// ClientClass returns the class of a client from its node's
// user_agent_name, or "" for a client that needs nothing special.
func ClientClass(userAgentName string) string {
	if userAgentName == "gRPC C-core" || strings.HasPrefix(userAgentName, "gRPC C-core ") {
		return ClassCCore
	}
	if userAgentName == "envoy" {
		return ClassEnvoy
	}
	return ""
}

// ClusterVariant is the Cluster that clients of Class get in place of the
// cluster of the same name in Resources.Clusters.
type ClusterVariant struct {
	Class   string
	Cluster Encoded
}
