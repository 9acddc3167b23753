package xds

import (
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// The incremental (delta) protocol: requests subscribe and unsubscribe
// names, responses carry only resources that changed and the names of
// resources that went away. ACKs are small, so a client with many
// resources costs the server little per change.
//
// Choices where the protocol leaves room:
//   - A subscription to a name that does not exist is answered at once
//     with the name in removed_resources, the protocol's "does not exist"
//     (the state-of-the-world stream serves an unknown listener instead,
//     for gRPC's error message; no gRPC client speaks delta).
//   - initial_resource_versions are trusted: versions are content hashes,
//     equal on every replica, so a client that reconnects to another
//     replica is sent only what differs from what it holds.
//   - A NACKed version is not sent again to that client, as in SotW; the
//     next version is.
//   - Subscription changes are applied whatever nonce the request
//     carries: unlike SotW, a delta request is not repeated, so none may be
//     dropped.

// handleDelta takes one request of a delta stream.
func (st *stream) handleDelta(req *discoveryv3.DeltaDiscoveryRequest) error {
	t, ok, err := st.begin(req.GetNode(), req.GetTypeUrl())
	if err != nil || !ok {
		return err
	}
	ts := st.types[t]
	if n := req.GetResponseNonce(); n != "" && n == ts.nonce {
		if req.GetErrorDetail() != nil {
			st.nacked(t, req.GetErrorDetail().GetMessage(), ts.status.SentVersion, n)
		} else {
			ts.status.AckedVersion = ts.status.SentVersion
			st.ackedResponse(t)
		}
	}

	if err := st.checkDeltaNames(t, ts, req); err != nil {
		return err
	}
	first := !ts.started
	ts.started = true
	wildcard := ts.wildcard || (first && t.fullState() && len(req.GetResourceNamesSubscribe()) == 0)
	var added, removed []string
	for _, n := range distinct(req.GetResourceNamesSubscribe()) {
		if n == "*" {
			wildcard = true
		} else if !ts.isSubscribed(n) {
			added = append(added, n)
		}
	}
	for _, n := range distinct(req.GetResourceNamesUnsubscribe()) {
		if n == "*" {
			wildcard = false
		} else if ts.isSubscribed(n) {
			removed = append(removed, n)
		}
	}
	if err := st.checkNames(t, "names subscribed", ts.nsub+len(added)-len(removed)); err != nil {
		return err
	}
	wildcardOn := wildcard && !ts.wildcard
	if first || len(added) > 0 || len(removed) > 0 || wildcard != ts.wildcard {
		st.subscribe(t, added, removed, wildcard)
	}
	if first {
		ivs := req.GetInitialResourceVersions()
		var held []string
		for n := range ivs {
			if wildcard || ts.isSubscribed(n) {
				held = append(held, n)
			}
		}
		// Kept exactly until the first response brings them in step
		// (typeState.promote).
		held = st.srv.cache.internAll(t, held)
		for _, n := range held {
			ts.setSentVersion(n, parseVersion(ivs[n]))
		}
	}
	st.publishType(t)
	if !st.srv.cache.Ready() {
		return nil
	}
	var candidates []string
	switch {
	case first || wildcardOn:
		candidates = st.deltaEverything(t)
	default:
		candidates = added
		if wildcard {
			// A name left while the wildcard still covers it: the client
			// dropped it, so it is sent again.
			candidates = append(candidates, removed...)
		}
	}
	return st.respondDelta(t, first || len(added) > 0 || wildcardOn, candidates, added)
}

// distinct returns names without repeats, in their first order.
func distinct(names []string) []string {
	seen := make(map[string]struct{}, len(names))
	out := names[:0:0]
	for _, n := range names {
		if _, ok := seen[n]; !ok {
			seen[n] = struct{}{}
			out = append(out, n)
		}
	}
	return out
}

// deltaEverything lists every name that a delta client of type t may need
// to hear about: its subscriptions, what it holds, and with a wildcard
// every resource of the type.
func (st *stream) deltaEverything(t typeIndex) []string {
	ts := st.types[t]
	names := append(ts.subscribedNames(), ts.sentNames()...)
	if ts.wildcard {
		for _, r := range st.srv.cache.all(t, st.client) {
			if !ts.isSubscribed(r.Name) && !ts.had(r.Name) {
				names = append(names, r.Name)
			}
		}
	}
	return names
}

// respondDelta sends, of the candidate names, the resources whose version
// the client lacks and the names it holds that are gone. asked are names
// just subscribed: one that does not exist is reported removed even though
// the client never held it. force sends a response even when empty, so a
// client waiting for its first answer gets one.
func (st *stream) respondDelta(t typeIndex, force bool, candidates, asked []string) error {
	ts := st.types[t]
	var out []*Resource
	var gone []string
	var askedSet map[string]struct{}
	if len(asked) > 0 {
		askedSet = make(map[string]struct{}, len(asked))
		for _, n := range asked {
			askedSet[n] = struct{}{}
		}
	}
	for _, n := range candidates {
		subscribed := ts.isSubscribed(n)
		if !subscribed && !ts.wildcard {
			continue
		}
		r := st.lookup(ts, t, n)
		if r == nil {
			_, wasAsked := askedSet[n]
			if ts.had(n) || (subscribed && wasAsked) {
				ts.clearSent(n)
				gone = append(gone, n)
			}
			continue
		}
		if !ts.upToDate(n, r) {
			st.stage(t, ts, r)
			ts.setSent(n, r)
			out = append(out, r)
		}
	}
	if len(out) == 0 && len(gone) == 0 && !force {
		return nil
	}
	return st.sendDeltaResources(t, out, gone)
}

func (st *stream) sendDeltaResources(t typeIndex, out []*Resource, gone []string) error {
	slices.SortFunc(out, byName)
	slices.Sort(gone)
	res := make([]*discoveryv3.Resource, len(out))
	for i, r := range out {
		res[i] = r.deltaResource()
	}
	resp := &discoveryv3.DeltaDiscoveryResponse{
		SystemVersionInfo: responseVersion(out, gone),
		Resources:         res,
		RemovedResources:  gone,
		TypeUrl:           typeURLs[t],
		Nonce:             st.nextNonce(t),
	}
	st.recordResponse(t, resp.SystemVersionInfo, len(out))
	st.srv.metrics.removed(t, len(gone))
	return st.sendDelta(resp)
}

// nacked records that the client rejected the response of type t with the
// given version and nonce. A NACK of the response NACKed last (or of no
// response) says nothing new: it is neither counted nor logged. The
// message is kept and logged cut short (Limits.MaxNackDetailBytes), and
// the log lines of one stream spaced (Limits.NackLogInterval).
func (st *stream) nacked(t typeIndex, msg, version, nonce string) {
	ts := st.types[t]
	if nonce == "" || nonce == ts.nackedNonce {
		st.srv.metrics.limitExceeded(limitNackLog)
		return
	}
	ts.nackedNonce = nonce
	st.srv.metrics.nack(t, clientClass(st.conv.class.Load()))
	st.nackedResponse(t)
	full := len(msg)
	msg = st.srv.cutCounted(limitNackDetail, msg, st.srv.limits.MaxNackDetailBytes)
	if ok, suppressed := st.allowNackLog(); ok {
		st.logger().Warn("client rejected xDS response",
			"type", t.String(), "version", version, "nonce", nonce, "error", msg, "error_bytes", full, "nack_lines_suppressed", suppressed)
	}
	ts.status.Nacks++
	ts.status.LastNack = msg
	ts.status.LastNackBytes = 0
	if full > st.srv.limits.MaxNackDetailBytes {
		ts.status.LastNackBytes = full
	}
	ts.status.LastNackAt = st.srv.now()
}

// checkDeltaNames refuses a delta request that would take the stream's
// subscription of type t, or the names it says it holds, past MaxNames.
func (st *stream) checkDeltaNames(t typeIndex, ts *typeState, req *discoveryv3.DeltaDiscoveryRequest) error {
	if err := st.checkNames(t, "initial_resource_versions", len(req.GetInitialResourceVersions())); err != nil {
		return err
	}
	// Before distinct: a list longer than this many names takes a stream
	// past the limit whatever its repeats.
	return st.checkNames(t, "names to subscribe in one request", len(req.GetResourceNamesSubscribe()))
}
