package model

import "hash/fnv"

// This file is the output contract: what the translator hands the xDS
// server. Resources arrive encoded, with their content version, so the
// server hashes, marshals and decides nothing about their content; it only
// picks, per client, which of them to send (see client.go).

// ResourceType is one of the four xDS resource types Switchboard serves, in
// the xDS "make before break" order: a client learns a listener, then its
// route, then the cluster, then the endpoints.
type ResourceType int

const (
	Listener ResourceType = iota
	Route
	Cluster
	Assignment
	// NumResourceTypes is the number of resource types; ResourceType
	// values are the indexes 0 to NumResourceTypes-1.
	NumResourceTypes
)

// String returns the short name used in metrics and logs: lds, rds, cds or
// eds.
func (t ResourceType) String() string {
	switch t {
	case Listener:
		return "lds"
	case Route:
		return "rds"
	case Cluster:
		return "cds"
	case Assignment:
		return "eds"
	}
	return "unknown"
}

// Encoded is one xDS resource in wire form: the bytes of its message as
// protobuf-go's deterministic marshalling writes them, and Version, a
// digest of those bytes. Equal content has equal bytes and so an equal
// version on every replica and after every restart.
//
// Name is the resource's name (an assignment's cluster_name). Wire is
// read-only once made; decode it with proto.Unmarshal into the message of
// its type. Make one with NewEncoded, which sets Version; a Version of 0
// means not computed, and a consumer computes it (ContentVersion).
type Encoded struct {
	Name    string
	Wire    []byte
	Version uint64
}

// NewEncoded returns the resource named name whose marshalled bytes are
// wire (kept, not copied), with its content version.
func NewEncoded(name string, wire []byte) Encoded {
	return Encoded{Name: name, Wire: wire, Version: ContentVersion(wire)}
}

// ContentVersion is a short, stable digest of b (FNV-1a, 64 bits), never 0:
// per-client state uses 0 for a version it cannot read.
func ContentVersion(b []byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(b)
	return max(h.Sum64(), 1)
}

// View names the clients that a Variant is for. Each field that is set must
// match the client's (see Client.Views); the zero View is every client. A
// variant for View{Class: ClassEnvoy, Zone: "z1"} is for Envoy clients in
// zone z1; one for View{Namespace: "n"}, for the clients of namespace n.
type View struct {
	Class     string
	Zone      string
	Namespace string
}

// Variant is a resource that the clients of View get in place of the plain
// resource of the same type and name.
type Variant struct {
	Type     ResourceType
	View     View
	Resource Encoded
}

// Resources are the xDS resources that one group contributes: one Service,
// or one part of the sidecar stage. Every list is sorted by resource name;
// Variants by type, name, then view (class, zone, namespace).
// Resources and the bytes they hold are read-only.
type Resources struct {
	Listeners   []Encoded
	Routes      []Encoded
	Clusters    []Encoded
	Assignments []Encoded
	// Variants are resources shaped for some clients (see Client.Views):
	// assignments per zone (a Service preferring close endpoints), per
	// client class (Envoy's DRAINING-aware ones) and per both; clusters per
	// client class (C-core's round robin); the sidecar stage's listeners
	// and routes per namespace. The plain resource of the same name is
	// what every other client gets.
	Variants []Variant
	// Aliases maps every other name a client may dial for one of this
	// Service's ports (for example "S.N:P", "S.N.svc:P", and "S.N" when the
	// Service has one port) to the canonical listener name. Alias listeners
	// are not built in advance: the server builds one when a client
	// subscribes to it.
	Aliases map[string]string
	// Visibility lists the namespaces whose clients may see these
	// resources, sorted, the Service's own among them; nil means every
	// client may. A client that may not (see Client.MaySee) is served none
	// of them, aliases included: to it the Service does not exist.
	Visibility []string
	// EnvoyOnly is set on the resources of the sidecar stage: their
	// listeners are served to Envoy clients (ClassEnvoy) only, and are the
	// only listeners an Envoy client gets (see Client.InScope).
	EnvoyOnly bool
}

// Of returns the plain resources of type t.
func (r *Resources) Of(t ResourceType) []Encoded {
	switch t {
	case Listener:
		return r.Listeners
	case Route:
		return r.Routes
	case Cluster:
		return r.Clusters
	case Assignment:
		return r.Assignments
	}
	return nil
}
