package xds

import (
	"slices"
	"strings"
)

// typeState is one stream's protocol state for one resource type.
//
// It is the part of the server that grows with clients × names, so it is
// kept compact: one 32-byte entry per name, in a slice sorted by name,
// holds whether the client subscribed to it, the version last sent (as a
// number), whether it was given a real listener and how many subscribed
// names watch it. Name strings are the cache's own where the cache has the
// name, not one copy per client. (A map of the same entries costs about
// three times as much: its slots are larger and, at a thousand names, half
// empty.)
type typeState struct {
	started  bool
	wildcard bool
	names    []nameState // sorted by name
	// empty counts the entries of names that hold nothing but their name.
	// They are dropped all at once when they are more than half (see
	// settle), so that emptying many entries one by one costs linear time,
	// as reserve does for filling them.
	empty int
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
	// nackedNonce is the nonce of the response last NACKed: a NACK of it
	// again is not counted again (see stream.nacked).
	nackedNonce string
	// unknownCapped is set once the stream went without a placeholder
	// listener for want of room (Limits.MaxUnknownListeners).
	unknownCapped bool
	// status is what /debug/clients shows.
	status TypeStatus
}

// nameState is what a stream knows of one name of one type.
type nameState struct {
	name string
	// sent is the version (Resource.v) last sent when hasSent: what the
	// client has, or has rejected. A resource is sent again only when its
	// version differs, so a rejected version is never sent twice to one
	// client. 0 is a version the client holds that is not one of ours.
	sent uint64
	// refs counts the subscribed names that make the stream watch this
	// name in the cache (the name itself, and short names resolving to it).
	refs       int32
	subscribed bool
	hasSent    bool
	// known is set once the client was given a real listener for the name.
	known bool
}

// empty reports whether s holds nothing but its name.
func (s nameState) empty() bool { return s == nameState{name: s.name} }

func newTypeState() *typeState { return &typeState{} }

func (ts *typeState) find(name string) (int, bool) {
	return slices.BinarySearchFunc(ts.names, name, func(s nameState, n string) int { return strings.Compare(s.name, n) })
}

// get returns the state of name (its zero value when there is none).
func (ts *typeState) get(name string) nameState {
	if i, ok := ts.find(name); ok {
		return ts.names[i]
	}
	return nameState{name: name}
}

// update applies f to the state of name; an entry that then holds nothing
// is dropped in time (see settle).
func (ts *typeState) update(name string, f func(*nameState)) {
	i, ok := ts.find(name)
	s := nameState{name: name}
	if ok {
		s = ts.names[i]
	}
	was, wasEmpty := s.subscribed, s.empty()
	f(&s)
	switch {
	case was && !s.subscribed:
		ts.nsub--
		ts.digest -= nameHash(name)
	case !was && s.subscribed:
		ts.nsub++
		ts.digest += nameHash(name)
	}
	switch {
	case ok:
		ts.names[i] = s
		if isEmpty := s.empty(); isEmpty != wasEmpty {
			if isEmpty {
				ts.empty++
				ts.settle()
			} else {
				ts.empty--
			}
		}
	case !s.empty():
		ts.names = slices.Insert(ts.names, i, s)
	}
}

// settle drops the empty entries once they are more than half of all:
// each drop costs a pass over the entries, paid for by the half that
// became empty since the last.
func (ts *typeState) settle() {
	if ts.empty*2 > len(ts.names) {
		ts.names = slices.DeleteFunc(ts.names, nameState.empty)
		ts.empty = 0
	}
}

// reserveMin is the fewest names for which reserve makes room at once.
const reserveMin = 16

// reserve adds entries for the names that have none, with one sort rather
// than one insertion each (a first subscription brings a thousand names),
// and no spare capacity. The entries stay empty only until the caller
// subscribes them.
func (ts *typeState) reserve(names []string) {
	if len(names) < reserveMin {
		return
	}
	var missing []nameState
	for _, n := range names {
		if _, ok := ts.find(n); !ok {
			missing = append(missing, nameState{name: n})
		}
	}
	if len(missing) == 0 {
		return
	}
	out := make([]nameState, 0, len(ts.names)+len(missing))
	out = append(append(out, ts.names...), missing...)
	slices.SortFunc(out, func(a, b nameState) int { return strings.Compare(a.name, b.name) })
	before := len(ts.names)
	ts.names = slices.CompactFunc(out, func(a, b nameState) bool { return a.name == b.name })
	ts.empty += len(ts.names) - before
}

func (ts *typeState) isSubscribed(name string) bool { return ts.get(name).subscribed }

// sentVersion returns the version last sent for name, if any.
func (ts *typeState) sentVersion(name string) (uint64, bool) {
	s := ts.get(name)
	return s.sent, s.hasSent
}

func (ts *typeState) setSent(name string, version uint64) {
	ts.update(name, func(s *nameState) { s.sent, s.hasSent = version, true })
}

func (ts *typeState) clearSent(name string) {
	ts.update(name, func(s *nameState) { s.sent, s.hasSent = 0, false })
}

// clearAllSent forgets every version sent (a SotW full-state response
// replaces them all).
func (ts *typeState) clearAllSent() {
	for i := range ts.names {
		ts.names[i].sent, ts.names[i].hasSent = 0, false
	}
	ts.names = slices.DeleteFunc(ts.names, nameState.empty)
	ts.empty = 0
}

func (ts *typeState) isKnown(name string) bool { return ts.get(name).known }

func (ts *typeState) setKnown(name string) {
	if i, ok := ts.find(name); ok && ts.names[i].known {
		return
	}
	ts.update(name, func(s *nameState) { s.known = true })
}

// subscribedNames lists the names the client subscribed to.
func (ts *typeState) subscribedNames() []string {
	out := make([]string, 0, ts.nsub)
	for _, s := range ts.names {
		if s.subscribed {
			out = append(out, s.name)
		}
	}
	return out
}

// sentNames lists the names the client was sent and did not subscribe to
// (what a wildcard brought it).
func (ts *typeState) sentNames() []string {
	var out []string
	for _, s := range ts.names {
		if s.hasSent && !s.subscribed {
			out = append(out, s.name)
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
	ts.update(name, func(s *nameState) { s.subscribed, s.sent, s.hasSent, s.known = false, 0, false, false })
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
