package model

import "time"

// This file holds the trimmed views of the Gateway API objects that route
// traffic to Services in a mesh (GAMMA, GEP-1426): HTTPRoute and GRPCRoute
// with a Service as parent, and the ReferenceGrants that let a route reach
// a Service of another namespace. The watcher builds them from
// gateway.networking.k8s.io objects (informers or manifest files) and keeps
// only what translation needs; values are immutable once published, like
// Service views.

// Route kinds, as in the Gateway API.
const (
	KindHTTPRoute = "HTTPRoute"
	KindGRPCRoute = "GRPCRoute"
)

// RouteKey names a route: its kind, namespace and name.
type RouteKey struct {
	Kind      string
	Namespace string
	Name      string
}

// String returns "Kind namespace/name".
func (k RouteKey) String() string { return k.Kind + " " + k.Namespace + "/" + k.Name }

// MeshRoute is the trimmed view of one HTTPRoute or GRPCRoute. Fields keep the
// Gateway API's meaning; defaults the API server applies (a parentRef's
// group and kind, a match's type, a backend's weight) are applied by the
// watcher, so a route read from a manifest reads as the API server would
// store it.
type MeshRoute struct {
	Key RouteKey
	// Generation is metadata.generation, for status.
	Generation int64
	// Created is metadata.creationTimestamp: among rules of equal
	// precedence on several routes, the oldest route's win (the spec's tie
	// break, then namespace/name).
	Created time.Time
	// Parents are spec.parentRefs, every one of them: the translator uses
	// those that name a Service (ParentRef.Service).
	Parents []ParentRef
	Rules   []RouteRule
}

// ParentRef is one spec.parentRefs entry, with the namespace defaulted to
// the route's.
type ParentRef struct {
	Group     string
	Kind      string
	Namespace string
	Name      string
	// SectionName is the parent's section ("" for none); for a Service
	// parent, a port name.
	SectionName string
	// Port is the parent's port number; 0 means every port.
	Port int32
}

// Service returns the Service this parent names, and false when it names
// something else (a Gateway, or any other group or kind).
func (p ParentRef) Service() (ServiceKey, bool) {
	if p.Group != "" || p.Kind != "Service" {
		return ServiceKey{}, false
	}
	return ServiceKey{Namespace: p.Namespace, Name: p.Name}, true
}

// RouteRule is one rule of a route.
type RouteRule struct {
	// Name is the rule's name ("" when unnamed).
	Name string
	// Matches are the rule's matches, any of which selects it. Empty means
	// every request.
	Matches []RouteMatch
	Filters []RouteFilter
	// Backends are the rule's backendRefs.
	Backends []BackendRef
	// RequestTimeout and BackendTimeout are timeouts.request and
	// timeouts.backendRequest (HTTPRoute only); 0 when unset or "0s" (no
	// timeout).
	RequestTimeout time.Duration
	BackendTimeout time.Duration
	// Retry is the rule's retry (HTTPRoute only), nil when unset.
	Retry *RouteRetry
}

// RouteRetry is an HTTPRoute rule's retry.
type RouteRetry struct {
	// Codes are the HTTP status codes to retry on.
	Codes []int
	// Attempts is the number of retries; 0 when unset.
	Attempts int
	// Backoff is the minimum back-off between attempts; 0 when unset.
	Backoff time.Duration
}

// Match types, as in the Gateway API.
const (
	MatchExact             = "Exact"
	MatchPathPrefix        = "PathPrefix"
	MatchRegularExpression = "RegularExpression"
)

// RouteMatch is one match of a rule: every condition that is set must hold.
type RouteMatch struct {
	// Path is an HTTPRoute's path match; nil for none.
	Path *PathMatch
	// Method is an HTTPRoute's HTTP method ("" for any).
	Method string
	// GRPC is a GRPCRoute's method match; nil for any.
	GRPC *GRPCMethodMatch
	// Headers and QueryParams match by name (case-insensitive for headers)
	// and value.
	Headers     []ValueMatch
	QueryParams []ValueMatch
}

// PathMatch is an HTTP path match: Type is MatchExact, MatchPathPrefix or
// MatchRegularExpression.
type PathMatch struct {
	Type  string
	Value string
}

// GRPCMethodMatch matches a gRPC service and method ("" for any): Type is
// MatchExact or MatchRegularExpression.
type GRPCMethodMatch struct {
	Type    string
	Service string
	Method  string
}

// ValueMatch matches a header or query parameter named Name: Type is
// MatchExact or MatchRegularExpression.
type ValueMatch struct {
	Type  string
	Name  string
	Value string
}

// Filter types, as in the Gateway API.
const (
	FilterRequestHeaderModifier  = "RequestHeaderModifier"
	FilterResponseHeaderModifier = "ResponseHeaderModifier"
	FilterRequestRedirect        = "RequestRedirect"
	FilterURLRewrite             = "URLRewrite"
	FilterRequestMirror          = "RequestMirror"
	FilterExtensionRef           = "ExtensionRef"
)

// RouteFilter is one filter of a rule or a backend. Type says which of the
// other fields is set; a filter of a type this model does not keep (CORS,
// ExternalAuth, ExtensionRef) has Type only.
type RouteFilter struct {
	Type            string
	RequestHeaders  *HeaderModifier
	ResponseHeaders *HeaderModifier
	Redirect        *Redirect
	Rewrite         *Rewrite
	Mirror          *Mirror
}

// HeaderModifier sets, adds and removes headers.
type HeaderModifier struct {
	Set    []Header
	Add    []Header
	Remove []string
}

// Header is one header name and value.
type Header struct {
	Name  string
	Value string
}

// Redirect is a RequestRedirect filter; unset fields are "" or 0.
type Redirect struct {
	Scheme     string
	Hostname   string
	Path       *PathModifier
	Port       int32
	StatusCode int
}

// Rewrite is a URLRewrite filter; unset fields are "" or nil.
type Rewrite struct {
	Hostname string
	Path     *PathModifier
}

// Path modifier types, as in the Gateway API.
const (
	ReplaceFullPath    = "ReplaceFullPath"
	ReplacePrefixMatch = "ReplacePrefixMatch"
)

// PathModifier replaces the full path or the matched prefix with Value.
type PathModifier struct {
	Type  string
	Value string
}

// Mirror is a RequestMirror filter: a copy of Percent percent of requests
// (100 when unset) goes to Backend, whose answer is dropped.
type Mirror struct {
	Backend BackendRef
	Percent int32
}

// BackendRef is one backendRef of a rule, with the API's defaults applied
// (group "", kind Service, the route's namespace, weight 1).
type BackendRef struct {
	Group     string
	Kind      string
	Namespace string
	Name      string
	// Port is the Service port number; 0 when unset (which a Service
	// backend may not be).
	Port    int32
	Weight  int32
	Filters []RouteFilter
}

// Service returns the Service this backend names, and false when it names
// another kind of backend.
func (b BackendRef) Service() (ServiceKey, bool) {
	if b.Group != "" || b.Kind != "Service" {
		return ServiceKey{}, false
	}
	return ServiceKey{Namespace: b.Namespace, Name: b.Name}, true
}

// GrantKey names a ReferenceGrant.
type GrantKey struct {
	Namespace string
	Name      string
}

// String returns "namespace/name".
func (k GrantKey) String() string { return k.Namespace + "/" + k.Name }

// ReferenceGrant is the trimmed view of a ReferenceGrant: objects of the
// From kinds in the From namespaces may refer to the To objects of the
// grant's namespace.
type ReferenceGrant struct {
	Key  GrantKey
	From []GrantFrom
	To   []GrantTo
}

// GrantFrom is one spec.from entry.
type GrantFrom struct {
	Group     string
	Kind      string
	Namespace string
}

// GrantTo is one spec.to entry; Name "" means every object of the kind.
type GrantTo struct {
	Group string
	Kind  string
	Name  string
}

// Allows reports whether g lets an object of group fromGroup and kind
// fromKind in namespace fromNamespace refer to the object of group
// toGroup, kind toKind and name toName in g's namespace.
func (g *ReferenceGrant) Allows(fromGroup, fromKind, fromNamespace, toGroup, toKind, toName string) bool {
	from := false
	for _, f := range g.From {
		if f.Group == fromGroup && f.Kind == fromKind && f.Namespace == fromNamespace {
			from = true
			break
		}
	}
	if !from {
		return false
	}
	for _, t := range g.To {
		if t.Group == toGroup && t.Kind == toKind && (t.Name == "" || t.Name == toName) {
			return true
		}
	}
	return false
}
