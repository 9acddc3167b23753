package model

// This file is the route status contract: what the translator says about
// each mesh route, which one writer puts in the route's status.parents
// (Contour's way: status as data from the translator, one writer).

// Route condition types and reasons, as in the Gateway API.
const (
	ConditionAccepted         = "Accepted"
	ConditionResolvedRefs     = "ResolvedRefs"
	ConditionPartiallyInvalid = "PartiallyInvalid"

	ReasonAccepted         = "Accepted"
	ReasonNoMatchingParent = "NoMatchingParent"
	ReasonResolvedRefs     = "ResolvedRefs"
	ReasonBackendNotFound  = "BackendNotFound"
	ReasonRefNotPermitted  = "RefNotPermitted"
	ReasonInvalidKind      = "InvalidKind"
	ReasonUnsupportedValue = "UnsupportedValue"
)

// RouteStatus is what a route's status says, for the parents of it that
// are Services. Values are immutable once made.
type RouteStatus struct {
	Route RouteKey
	// Generation is the route's metadata.generation the status is about
	// (observedGeneration).
	Generation int64
	Parents    []ParentStatus
}

// ParentStatus is the status of a route for one of its Service parents.
type ParentStatus struct {
	Parent       ParentRef
	Accepted     Condition
	ResolvedRefs Condition
	// PartiallyInvalid is set (Status true, UnsupportedValue) when some of
	// the route is not applied as written for some client kind on this
	// parent: a match left out, a filter not applied or failing its calls
	// (the diagnostics say which); nil when all of it is.
	PartiallyInvalid *Condition
}

// Condition is one condition of a route parent's status.
type Condition struct {
	Status  bool
	Reason  string
	Message string
}
