package xds

import (
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// The state-of-the-world protocol: every request repeats the whole
// subscription of its type, and LDS and CDS responses carry every
// subscribed resource.

// handleSotW takes one request of a state-of-the-world stream: an ACK, a
// NACK or a new subscription.
func (st *stream) handleSotW(req *discoveryv3.DiscoveryRequest) error {
	t, ok, err := st.begin(req.GetNode(), req.GetTypeUrl())
	if err != nil || !ok {
		return err
	}
	ts := st.types[t]
	if ts.nonce != "" && req.GetResponseNonce() != ts.nonce {
		// A request that answers an older response: the client will answer
		// the newest one too (xDS protocol, "resource updates").
		return nil
	}
	switch {
	case req.GetErrorDetail() != nil:
		st.nacked(t, req.GetErrorDetail().GetMessage(), req.GetVersionInfo(), req.GetResponseNonce())
	case req.GetResponseNonce() != "":
		ts.status.AckedVersion = req.GetVersionInfo()
		st.ackedResponse(t)
	}

	rn, err := namesOf(req)
	if err != nil {
		return err
	}
	if err := st.checkNames(t, "resource names in one request", rn.count); err != nil {
		return err
	}
	added, removed, wildcard := st.diffSubscription(t, ts, rn)
	first := !ts.started
	ts.started = true
	if first || len(added) > 0 || len(removed) > 0 || wildcard != ts.wildcard {
		st.subscribe(t, added, removed, wildcard)
	}
	st.publishType(t)
	if !st.srv.cache.Ready() {
		// Nothing is served before the first full translation; the ready
		// notification brings us back here.
		return nil
	}
	// A new subscription to LDS or CDS is answered at once, even when the
	// name does not exist, so the client learns that without a timer.
	force := t.fullState() && (first || len(added) > 0)
	return st.respond(t, force, added)
}

// diffSubscription compares the names in a request with the subscription.
func (st *stream) diffSubscription(t typeIndex, ts *typeState, req requestNames) (added, removed []string, wildcard bool) {
	wildcard = t.fullState() && req.count == 0 && (!ts.started || ts.wildcard)
	// Fast path for the common case, an ACK that repeats the subscription:
	// as many names as subscribed, with the same digest (a sum of name
	// hashes, so the order of names does not matter). A SotW ACK carries
	// every subscribed name, so this runs per ACK; with the request codec
	// it never turns the names into strings.
	if !req.packed {
		req.digest = 0
		for _, n := range req.names {
			req.digest += nameHash(n)
		}
	}
	if req.count == ts.nsub && req.digest == ts.digest {
		return nil, nil, wildcard
	}
	names := req.strings()
	wildcard = wildcard || (t.fullState() && slices.Contains(names, "*"))
	want := make(map[string]struct{}, len(names))
	for _, n := range names {
		if _, dup := want[n]; dup || n == "*" {
			continue
		}
		want[n] = struct{}{}
		if !ts.isSubscribed(n) {
			added = append(added, n)
		}
	}
	for _, n := range ts.subscribedNames() {
		if _, ok := want[n]; !ok {
			removed = append(removed, n)
		}
	}
	return added, removed, wildcard
}

// respond sends what the client of type t lacks. candidates are the names to
// look at (changed or newly subscribed); force sends a full-state response
// even when no version changed.
func (st *stream) respond(t typeIndex, force bool, candidates []string) error {
	ts := st.types[t]
	c := st.srv.cache
	if !t.fullState() {
		var out []*Resource
		for _, n := range candidates {
			if !ts.isSubscribed(n) {
				continue
			}
			if r := st.get(ts, t, n); r != nil && !ts.upToDate(n, r) {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			return nil
		}
		st.stageAll(t, ts, out)
		for _, r := range out {
			ts.setSent(r.Name, r)
		}
		return st.sendResources(t, out)
	}

	// LDS and CDS: any change among the candidates means a response that
	// carries every subscribed resource that exists.
	changed := force
	for _, n := range candidates {
		if changed {
			break
		}
		if !ts.wildcard && !ts.isSubscribed(n) {
			continue
		}
		r := st.get(ts, t, n)
		changed = (r == nil && ts.had(n)) || (r != nil && !ts.upToDate(n, r))
	}
	if !changed {
		return nil
	}
	var out []*Resource
	if ts.wildcard {
		// Every resource of the type, each in the client's view.
		for _, r := range c.all(t, st.client) {
			if ts.isSubscribed(r.Name) {
				continue
			}
			if r := st.lookup(ts, t, r.Name); r != nil {
				out = append(out, r)
			}
		}
	}
	for _, n := range ts.subscribedNames() {
		if r := st.get(ts, t, n); r != nil {
			out = append(out, r)
		}
	}
	st.stageAll(t, ts, out)
	ts.clearAllSent()
	for _, r := range out {
		ts.setSent(r.Name, r)
	}
	return st.sendResources(t, out)
}

func (st *stream) sendResources(t typeIndex, out []*Resource) error {
	slices.SortFunc(out, byName)
	anys := make([]*anypb.Any, len(out))
	for i, r := range out {
		anys[i] = r.Any()
	}
	resp := &discoveryv3.DiscoveryResponse{
		VersionInfo: responseVersion(out, nil),
		Resources:   anys,
		TypeUrl:     typeURLs[t],
		Nonce:       st.nextNonce(t),
	}
	st.recordResponse(t, resp.VersionInfo, len(out))
	return st.send(resp)
}
