package model

import (
	"slices"
	"strings"
)

// Client is everything the server decides per client, and this file is the
// one place it is decided. From the node of a client's first request:
//
//   - Class (ClientClass of node.user_agent_name) picks the cluster and
//     assignment variants shaped for that kind of client;
//   - Zone (node.locality.zone) picks the zone variants of assignments;
//     with a class too, the composite;
//   - Namespace (node metadata NAMESPACE) lets a listener name without a dot
//     in its host ("S:P", "S") stand for a Service of that namespace, as a
//     DNS search path would (Resolve), picks the namespace variants of
//     routes, and says which Services limited by visibility the client may
//     see (MaySee).
//
// Views says which variants the client gets and in which order they are
// tried; InScope, which resources a wildcard subscription brings it.
type Client struct {
	Class     string
	Zone      string
	Namespace string
}

// ClassNone is the class of every client that needs nothing special. It is
// the empty string; where a class is shown (metrics, debug output, the
// status command) it is spelled ClassNoneLabel.
const ClassNone = ""

// ClassNoneLabel is how ClassNone is shown in metric labels and output.
const ClassNoneLabel = "other"

// ClassCCore is the client class of gRPC C-core (node user_agent_name
// "gRPC C-core", followed by the platform and wrapping language, e.g.
// "gRPC C-core linux Python"): Debian's python3-grpcio 1.51 crashes
// (SIGSEGV) on a ring_hash cluster, with or without the custom LB config,
// so clients of this class get ring_hash clusters as round robin.
const ClassCCore = "c-core"

// ClassEnvoy is the client class of Envoy, whose node user_agent_name is
// "envoy". Envoy reads an endpoint's health_status, so clients of this
// class get serving, terminating endpoints as DRAINING; and they get the
// sidecar stage's listeners, not the api_listeners of gRPC clients.
const ClassEnvoy = "envoy"

// ClientClass returns the class of a client from its node's
// user_agent_name: ClassCCore, ClassEnvoy or ClassNone.
func ClientClass(userAgentName string) string {
	if userAgentName == "gRPC C-core" || strings.HasPrefix(userAgentName, "gRPC C-core ") {
		return ClassCCore
	}
	if userAgentName == "envoy" {
		return ClassEnvoy
	}
	return ClassNone
}

// ClassLabel returns class as it is shown: ClassNoneLabel for ClassNone.
func ClassLabel(class string) string {
	if class == ClassNone {
		return ClassNoneLabel
	}
	return class
}

// Resolve returns the listener name that name stands for for this client: a
// name without a dot in its host ("S:P", "S") is a Service in the client's
// own namespace ("S.N:P", "S.N"); any other name, an xdstp:// or other URI
// name among them, or any name for a client without a namespace, stands
// for itself, as does every name for an Envoy client (its listener names
// are names of the sidecar stage, never short names).
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
// visibleTo is empty; else only a client in the Service's own namespace or
// in one listed. A client without a namespace sees no limited Service.
//
// The namespace is whatever the node says, so this is only as strong as
// the node's word: with mutual TLS the server checks it against the
// client's SPIFFE identity and visibility holds; without, a client can
// claim any namespace and visibility is advisory only.
func (c Client) MaySee(visibleTo []string, serviceNamespace string) bool {
	if len(visibleTo) == 0 {
		return true
	}
	if c.Namespace == "" {
		return false
	}
	return c.Namespace == serviceNamespace || slices.Contains(visibleTo, c.Namespace)
}

// InScope reports whether a wildcard subscription to type t may bring this
// client a resource whose group has Resources.EnvoyOnly set to envoyOnly:
// a resource of the sidecar stage only to an Envoy client (its passthrough
// cluster is ORIGINAL_DST, which gRPC clients refuse), and a listener not
// of the sidecar stage to every client but an Envoy one (Envoy does not
// take api_listeners over LDS). A resource asked for by name is served
// whatever its scope.
func (c Client) InScope(t ResourceType, envoyOnly bool) bool {
	envoy := c.Class == ClassEnvoy
	if envoyOnly {
		return envoy
	}
	return !envoy || t != Listener
}

// Views returns, per resource type, the views whose variants this client
// gets, most specific first: the first view with a variant of a name wins,
// and with none the client gets the plain resource. The views are fixed by
// the node, so a server computes them once per client, and clients with
// one view share one variant.
//
//   - Clusters: the client's class (C-core's round robin).
//   - Assignments: for a client with a class and a zone, the class and
//     zone composite, then the zone, then the class: an Envoy in zone Z gets
//     Z's DRAINING-aware variant, else (no draining endpoints) Z's variant,
//     else (Z failed over, or has no endpoints) the un-zoned DRAINING-aware
//     one. The translator makes the composite whenever both of the others
//     exist, so the order never hides one.
//   - Routes: for an Envoy client, the Envoy and namespace composite, then
//     the Envoy variant its sidecar listeners route with (an Envoy client
//     never takes a variant shaped for gRPC clients); for any other, the
//     client's namespace (routes that differ by the client's namespace).
//   - Listeners: none; every client of a kind gets the same listeners.
func (c Client) Views() [NumResourceTypes][]View {
	var v [NumResourceTypes][]View
	switch {
	case c.Class == ClassEnvoy && c.Namespace != "":
		v[Route] = []View{{Class: c.Class, Namespace: c.Namespace}, {Class: c.Class}}
	case c.Class == ClassEnvoy:
		v[Route] = []View{{Class: c.Class}}
	case c.Namespace != "":
		v[Route] = []View{{Namespace: c.Namespace}}
	}
	if c.Class != ClassNone {
		v[Cluster] = []View{{Class: c.Class}}
	}
	switch {
	case c.Class != ClassNone && c.Zone != "":
		v[Assignment] = []View{{Class: c.Class, Zone: c.Zone}, {Zone: c.Zone}, {Class: c.Class}}
	case c.Class != ClassNone:
		v[Assignment] = []View{{Class: c.Class}}
	case c.Zone != "":
		v[Assignment] = []View{{Zone: c.Zone}}
	}
	return v
}
