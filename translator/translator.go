// Package translator turns the watcher's per-Service view into xDS resources:
// model.Service in, model.Resources out (encoded, with content versions).
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
	// sidecars get (DNSListenerName), or an IPv4 and an IPv6 address
	// separated by a comma (DNSListenerName and DNS6ListenerName, the same
	// table); "" for none.
	SidecarDNS string
	// Sidecars adds, to every HTTP-family port with a ClusterIP, the Envoy
	// variant of its route configuration that the sidecar stage's
	// outbound listener uses (see envoyRouteWire).
	Sidecars bool
}

// Diagnostic reports an input that could not be translated, or not fully.
// It names the object and says what is wrong; the rest of the Service (and
// every other Service) is still translated.
type Diagnostic struct {
	Service model.ServiceKey
	// Port is the Service port's name or number, "" when the problem is not
	// about one port.
	Port string
	// Route names the mesh route the problem is in; zero when it is not
	// about a route.
	Route model.RouteKey
	// Feature names the Gateway API feature (a filter type, "queryParams",
	// "timeouts.backendRequest", ...) that the clients of Flavour do not
	// get as written; "" when the diagnostic is not about one.
	Feature string
	// Flavour is the client flavour a Feature diagnostic is about.
	Flavour Flavour
	Reason  string
}

func (d Diagnostic) String() string {
	s := d.Service.String()
	if d.Port != "" {
		s += " port " + d.Port
	}
	if d.Route != (model.RouteKey{}) {
		s += " " + d.Route.String()
	}
	return s + ": " + d.Reason
}
