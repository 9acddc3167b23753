package model

import "time"

// Batch is one coalesced set of changes that the watcher publishes.
type Batch struct {
	// Full is true when Services holds the whole world: the first batch after
	// every source has synced (and after a source restarts). Keys missing from
	// a full batch do not exist. Nothing is published before the first full
	// batch, so a consumer never sees a partial world.
	Full bool
	// Services maps each changed Service to its new view; a nil value means
	// the Service was deleted (or left the watched namespaces or selector).
	Services map[ServiceKey]*Service
	// Routes maps each changed HTTPRoute and GRPCRoute to its new view, and
	// Grants each changed ReferenceGrant; a nil value means deleted. A Full
	// batch holds every one of them, as it does Services.
	Routes map[RouteKey]*MeshRoute
	Grants map[GrantKey]*ReferenceGrant
	// Changed holds, for the Services of a batch that is not Full, when the
	// earliest change folded into it happened: an EndpointSlice's
	// endpoints.kubernetes.io/last-change-trigger-time when it has one,
	// else when the watcher saw the change. It is what convergence is
	// measured from. A Full batch leaves it nil (start-up is not a change).
	Changed map[ServiceKey]time.Time
	// FirstEvent is when the watcher saw the first change of the batch
	// (zero for a Full batch): the coalescing wait is measured from it.
	FirstEvent time.Time
}

// Sink consumes batches. The watcher calls it from a single goroutine, in
// order, and waits for it to return before it publishes the next batch, so a
// slow sink coalesces more changes into the next batch rather than queueing.
type Sink func(Batch)
