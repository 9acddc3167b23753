package xds

import "slices"

// typeState is one stream's protocol state for one resource type.
//
// It is the part of the server that grows with clients × names, so it is
// kept compact: one map entry per name holds whether the client subscribed
// to it, the version last sent, whether it was given a real listener and
// how many subscribed names watch it; name strings are the cache's own
// where the cache has the name, not one copy per client.
type typeState struct {
	started  bool
	wildcard bool
	names    map[string]nameState
	// nsub counts the names with subscribed set, and digest is the sum
	// of their nameHash: a SotW request with the same count and digest
	// repeats the subscription.
	nsub   int
	digest uint64
	nonce  string
	// resolved maps a short name ("S:P", "S") to the name it stands for in
	// the client's namespace ("S.NS:P", "S.NS"); requesters is the reverse.
	// Both are nil until the client uses a short name.
	resolved   map[string]string
	requesters map[string][]string
	// unknown holds the UnknownListener built for each subscribed
	// listener name that names no Service (built per stream: typos are
	// rare and should not grow a shared map); nil until the first.
	unknown map[string]*Resource
	// status is what /debug/clients shows.
	status TypeStatus
}

// nameState is what a stream knows of one name of one type.
type nameState struct {
	// sent is the version last sent when hasSent: what the client has, or
	// has rejected. A resource is sent again only when its version
	// differs, so a rejected version is never sent twice to one client.
	sent string
	// refs counts the subscribed names that make the stream watch this
	// name in the cache (the name itself, and short names resolving to it).
	refs       int32
	subscribed bool
	hasSent    bool
	// known is set once the client was given a real listener for the name.
	known bool
}

func newTypeState() *typeState { return &typeState{names: map[string]nameState{}} }

// update applies f to the state of name and drops the entry once it holds
// nothing.
func (ts *typeState) update(name string, f func(*nameState)) {
	s := ts.names[name]
	was := s.subscribed
	f(&s)
	switch {
	case was && !s.subscribed:
		ts.nsub--
		ts.digest -= nameHash(name)
	case !was && s.subscribed:
		ts.nsub++
		ts.digest += nameHash(name)
	}
	if s == (nameState{}) {
		delete(ts.names, name)
		return
	}
	ts.names[name] = s
}

func (ts *typeState) isSubscribed(name string) bool { return ts.names[name].subscribed }

// sentVersion returns the version last sent for name, if any.
func (ts *typeState) sentVersion(name string) (string, bool) {
	s := ts.names[name]
	return s.sent, s.hasSent
}

func (ts *typeState) setSent(name, version string) {
	ts.update(name, func(s *nameState) { s.sent, s.hasSent = version, true })
}

func (ts *typeState) clearSent(name string) {
	ts.update(name, func(s *nameState) { s.sent, s.hasSent = "", false })
}

// clearAllSent forgets every version sent (a SotW full-state response
// replaces them all).
func (ts *typeState) clearAllSent() {
	for n, s := range ts.names {
		if s.hasSent {
			s.sent, s.hasSent = "", false
			if s == (nameState{}) {
				delete(ts.names, n)
			} else {
				ts.names[n] = s
			}
		}
	}
}

func (ts *typeState) isKnown(name string) bool { return ts.names[name].known }

func (ts *typeState) setKnown(name string) {
	if s, ok := ts.names[name]; !ok || !s.known {
		ts.update(name, func(s *nameState) { s.known = true })
	}
}

// subscribedNames lists the names the client subscribed to.
func (ts *typeState) subscribedNames() []string {
	out := make([]string, 0, ts.nsub)
	for n, s := range ts.names {
		if s.subscribed {
			out = append(out, n)
		}
	}
	return out
}

// sentNames lists the names the client was sent and did not subscribe to
// (what a wildcard brought it).
func (ts *typeState) sentNames() []string {
	var out []string
	for n, s := range ts.names {
		if s.hasSent && !s.subscribed {
			out = append(out, n)
		}
	}
	return out
}

// subscribeName records a subscription to name, served as rn, and returns
// the name to add to the cache's watch, or "" when it is watched already.
func (ts *typeState) subscribeName(name, rn string) string {
	ts.update(name, func(s *nameState) { s.subscribed = true })
	if rn != name {
		if ts.resolved == nil {
			ts.resolved, ts.requesters = map[string]string{}, map[string][]string{}
		}
		ts.resolved[name] = rn
		ts.requesters[rn] = append(ts.requesters[rn], name)
	}
	var refs int32
	ts.update(rn, func(s *nameState) { s.refs++; refs = s.refs })
	if refs == 1 {
		return rn
	}
	return ""
}

// unsubscribeName undoes subscribeName, forgets what was sent for name,
// and returns the name to drop from the watch, or "" when another
// subscribed name still needs it.
func (ts *typeState) unsubscribeName(name string) string {
	ts.update(name, func(s *nameState) { s.subscribed, s.sent, s.hasSent, s.known = false, "", false, false })
	delete(ts.unknown, name)
	rn := name
	if r, ok := ts.resolved[name]; ok {
		rn = r
		delete(ts.resolved, name)
		ts.requesters[rn] = slices.DeleteFunc(ts.requesters[rn], func(s string) bool { return s == name })
		if len(ts.requesters[rn]) == 0 {
			delete(ts.requesters, rn)
		}
	}
	var refs int32
	ts.update(rn, func(s *nameState) { s.refs--; refs = s.refs })
	if refs > 0 {
		return ""
	}
	return rn
}
