// Package translator turns the watcher's per-Service view into xDS resources.
//
// Everything here is a pure function: no I/O, clocks, loggers, metrics or
// mutable package state. The only package-level values are immutable
// prototypes (parts of messages and their wire bytes that are the same for
// every Service), each built once by a sync.OnceValue and never changed.
// Output is deterministic (sorted, no timestamps), so the same world gives
// byte-identical resources, and so identical content-derived versions, on
// every replica and after every restart.
package translator

import (
	"github.com/switchboard-xds/switchboard/model"
)

// Options are the inputs to translation that do not come from Kubernetes.
type Options struct {
	// ClusterDomain is the cluster's DNS domain, "cluster.local" by default.
	ClusterDomain string
	// SidecarDNS is the address ("IP:port") of the DNS listener that Envoy
	// sidecars get (DNSListenerName); "" for none.
	SidecarDNS string
}

// Resources are the xDS resources that one Service contributes. Every slice is
// sorted by resource name.
//
// Every resource comes encoded (see Encoded), so consumers hash, store and
// send the bytes, and never marshal. Resources and the bytes they hold are
// read-only.
type Resources struct {
	Listeners   []Encoded
	Routes      []Encoded
	Clusters    []Encoded
	Assignments []Encoded
	// ZoneAssignments are per-zone variants of Assignments for ports whose
	// traffic prefers close endpoints, sorted by cluster name, then zone. A
	// client whose node locality names one of these zones gets the variant;
	// every other client gets the plain assignment.
	ZoneAssignments []ZoneAssignment
	// ClusterVariants are clusters shaped for one class of client (see
	// ClientClass), sorted by name, then class.
	ClusterVariants []ClusterVariant
	// ClassAssignments are variants of Assignments and ZoneAssignments for
	// one class of client (see ClassAssignment), sorted by cluster name,
	// class, then zone ("" first).
	ClassAssignments []ClassAssignment
	// Aliases maps every other name a client may dial for one of this
	// Service's ports (for example "S.N:P", "S.N.svc:P", and "S.N" when the
	// Service has one port) to the canonical listener name. Alias listeners
	// are not built here: the server builds one with AliasListener only when a
	// client subscribes to it.
	Aliases map[string]string
	// Visibility lists the namespaces whose clients may see this Service's
	// resources, sorted, the Service's own among them (from
	// AnnotationVisibleTo); nil means every client may. A client that may
	// not (see Client.MaySee) is served none of them, aliases included:
	// to it the Service does not exist.
	Visibility []string
	// EnvoyOnly is set on the resources of the sidecar stage (Sidecar):
	// their listeners are served to Envoy clients (ClassEnvoy) only, and
	// are the only listeners an Envoy client gets: the api_listener
	// listeners of Service are for gRPC clients, and Envoy does not take
	// those over LDS.
	EnvoyOnly bool
	// ListenerVariants and RouteVariants are the namespace variants of
	// Listeners and Routes (see NamespaceVariant), sorted by name, then
	// namespace.
	ListenerVariants []NamespaceVariant
	RouteVariants    []NamespaceVariant
}

// Diagnostic reports an input that could not be translated, or not fully.
// It names the object and says what is wrong; the rest of the Service (and
// every other Service) is still translated.
type Diagnostic struct {
	Service model.ServiceKey
	// Port is the Service port's name or number, "" when the problem is not
	// about one port.
	Port   string
	Reason string
}

func (d Diagnostic) String() string {
	if d.Port == "" {
		return d.Service.String() + ": " + d.Reason
	}
	return d.Service.String() + " port " + d.Port + ": " + d.Reason
}
