package xds

import "maps"

// typeState is one stream's protocol state for one resource type.
//
// It is the part of the server that grows with clients × names, so it
// holds no entry per name. What the stream knows of a name the cache holds
// is three bits at the name's slot (slots.go): subscribed, sent, and (for
// listeners) given a real listener. The version sent is not kept: the
// stream is in step with the cache. Every name whose sent bit is set holds
// the version the client's lookup gave as of the cache's change sync (or,
// for the few names sent since, as of the change that ahead records); a
// version installed by a later change (Resource.seq) is one the client
// lacks. The cache marks every change of a name to the streams that watch
// it, and handleChanges advances sync once it has taken them.
//
// Names the cache does not hold (a subscription to a name that does not
// exist, a short name, a name served an unknown listener, a version the
// client brought in initial_resource_versions) keep an exact entry in
// other, with the version sent. An entry moves to the bits as soon as the
// client holds a version of the cache's (promote); a name whose slot became
// a tombstone moves the other way (evict). A name's state is in one place:
// other when it has an entry there, else the bits of its slot.
type typeState struct {
	started  bool
	wildcard bool
	// watchAll is set while the cache tells the stream of every change of
	// the type (wildcard, or a subscription of many names, see
	// stream.subscribe), not only those of the names it watches.
	watchAll bool

	slots            *slotTable
	sub, held, known bitset
	// sync is the change up to which every name of held not in ahead is
	// in step; ahead holds, by slot, the change of what was sent since when
	// that is later.
	sync  uint64
	ahead map[uint32]uint64
	// taking is the change up to which handleChanges is bringing the
	// stream (0 outside it): what it sends of that change or older needs
	// no entry in ahead, as advance is about to cover it, and each name is
	// looked at once per handleChanges.
	taking uint64
	other  map[string]*nameState

	// nsub counts the subscribed names, and digest is the sum of their
	// nameHash: a SotW request with the same count and digest repeats the
	// subscription.
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

// nameState is the exact state of one name outside the bits.
type nameState struct {
	// sent is the version (Resource.v) last sent when hasSent: what the
	// client has, or has rejected. 0 is a version the client holds that
	// is not one of ours.
	sent       uint64
	subscribed bool
	hasSent    bool
	// known is set once the client was given a real listener for the name.
	known bool
}

func (s *nameState) empty() bool { return !s.subscribed && !s.hasSent && !s.known }

func newTypeState(slots *slotTable) *typeState { return &typeState{slots: slots} }

// where tells where the state of name is: its entry in other, or (o nil)
// its slot when ok, which the cache holds when alive.
func (ts *typeState) where(name string) (o *nameState, slot uint32, alive, ok bool) {
	if o = ts.other[name]; o != nil {
		return o, 0, false, false
	}
	slot, alive, ok = ts.slots.lookup(name)
	return nil, slot, alive, ok
}

func (ts *typeState) isSubscribed(name string) bool {
	o, slot, _, ok := ts.where(name)
	return o != nil && o.subscribed || ok && ts.sub.has(slot)
}

// had reports whether the client was sent a version of name.
func (ts *typeState) had(name string) bool {
	o, slot, _, ok := ts.where(name)
	return o != nil && o.hasSent || ok && ts.held.has(slot)
}

func (ts *typeState) isKnown(name string) bool {
	o, slot, _, ok := ts.where(name)
	return o != nil && o.known || ok && ts.known.has(slot)
}

// holds reports whether the client was sent r, the resource name gets now.
func (ts *typeState) holds(name string, r *Resource) bool {
	o, slot, _, ok := ts.where(name)
	switch {
	case o != nil:
		return o.hasSent && o.sent == r.v
	case ok:
		return ts.held.has(slot) && r.seq != 0 && r.seq <= max(ts.sync, ts.ahead[slot])
	}
	return false
}

// upToDate is holds, and moves an exact entry that holds r to the bits.
func (ts *typeState) upToDate(name string, r *Resource) bool {
	if !ts.holds(name, r) {
		return false
	}
	if o := ts.other[name]; o != nil {
		ts.promote(name, o, r)
	}
	return true
}

// setSent records that r is sent for name.
func (ts *typeState) setSent(name string, r *Resource) {
	o, slot, alive, ok := ts.where(name)
	if o == nil && alive && r.seq != 0 {
		ts.held.set(slot)
		ts.sentAt(slot, r.seq)
		return
	}
	if o == nil {
		o = ts.toOther(name, slot, ok)
	}
	o.sent, o.hasSent = r.v, true
	ts.promote(name, o, r)
}

// setSentVersion records that the client holds version v of name (from
// initial_resource_versions).
func (ts *typeState) setSentVersion(name string, v uint64) {
	o := ts.other[name]
	if o == nil {
		slot, _, ok := ts.slots.lookup(name)
		o = ts.toOther(name, slot, ok)
	}
	o.sent, o.hasSent = v, true
}

func (ts *typeState) sentAt(slot uint32, seq uint64) {
	if seq <= max(ts.sync, ts.taking) {
		delete(ts.ahead, slot)
		return
	}
	if ts.ahead == nil {
		ts.ahead = map[uint32]uint64{}
	}
	ts.ahead[slot] = seq
}

// promote moves o, the exact state of name, to the bits when the cache
// holds the name and the client holds r, its version of it, or nothing.
func (ts *typeState) promote(name string, o *nameState, r *Resource) {
	if r.seq == 0 || o.hasSent && o.sent != r.v {
		return
	}
	slot, alive, _ := ts.slots.lookup(name)
	if !alive {
		return
	}
	if o.subscribed {
		ts.sub.set(slot)
	}
	if o.known {
		ts.known.set(slot)
	}
	if o.hasSent {
		ts.held.set(slot)
		ts.sentAt(slot, r.seq)
	}
	delete(ts.other, name)
}

// toOther moves the bits of name (at slot when ok) to a new exact entry
// and returns it. The version sent is not known there: the name is gone
// from the cache, or was never in it.
func (ts *typeState) toOther(name string, slot uint32, ok bool) *nameState {
	o := &nameState{}
	if ok {
		o.subscribed, o.hasSent, o.known = ts.sub.has(slot), ts.held.has(slot), ts.known.has(slot)
		ts.clearSlot(slot)
	}
	if ts.other == nil {
		ts.other = map[string]*nameState{}
	}
	ts.other[name] = o
	return o
}

func (ts *typeState) clearSlot(slot uint32) {
	ts.sub.clear(slot)
	ts.held.clear(slot)
	ts.known.clear(slot)
	delete(ts.ahead, slot)
}

// evict moves the state of name off its slot when the slot is a
// tombstone (see slots.go).
func (ts *typeState) evict(name string) {
	if ts.slots.ndead.Load() == 0 {
		return
	}
	o, slot, alive, ok := ts.where(name)
	if o != nil || !ok || alive || !(ts.sub.has(slot) || ts.held.has(slot) || ts.known.has(slot)) {
		return
	}
	ts.toOther(name, slot, ok)
}

// edit applies f to the exact state of name, moving it out of the bits
// first; used where a flag is set on a name the cache may not hold.
func (ts *typeState) edit(name string, f func(*nameState)) {
	o, slot, _, ok := ts.where(name)
	if o == nil {
		o = ts.toOther(name, slot, ok)
	}
	f(o)
	if o.empty() {
		delete(ts.other, name)
	}
}

func (ts *typeState) clearSent(name string) {
	o, slot, _, ok := ts.where(name)
	switch {
	case o != nil:
		ts.edit(name, func(s *nameState) { s.sent, s.hasSent = 0, false })
	case ok:
		ts.held.clear(slot)
		delete(ts.ahead, slot)
	}
}

// clearAllSent forgets every version sent (a SotW full-state response
// replaces them all).
func (ts *typeState) clearAllSent() {
	clear(ts.held)
	ts.ahead = nil
	maps.DeleteFunc(ts.other, func(_ string, o *nameState) bool {
		o.sent, o.hasSent = 0, false
		return o.empty()
	})
}

// forgetUnsubscribed forgets what the client holds and knows of the names
// it does not subscribe to: the wildcard that brought them is gone, and
// the stream no longer watches them.
func (ts *typeState) forgetUnsubscribed() {
	keep := func(b bitset) {
		for i := range b {
			var sub uint64
			if i < len(ts.sub) {
				sub = ts.sub[i]
			}
			b[i] &= sub
		}
	}
	keep(ts.held)
	keep(ts.known)
	maps.DeleteFunc(ts.ahead, func(slot uint32, _ uint64) bool { return !ts.held.has(slot) })
	maps.DeleteFunc(ts.other, func(_ string, o *nameState) bool { return !o.subscribed })
}

func (ts *typeState) setKnown(name string) {
	o, slot, alive, ok := ts.where(name)
	switch {
	case o == nil && alive:
		ts.known.set(slot)
	case o != nil && o.known, o == nil && ok && ts.known.has(slot):
	default:
		ts.edit(name, func(s *nameState) { s.known = true })
	}
}

// advance records that every change up to seq was taken and handled.
func (ts *typeState) advance(seq uint64) {
	ts.sync, ts.taking = max(ts.sync, seq), 0
	if len(ts.ahead) == 0 {
		// A map keeps its room once emptied: let it go rather than walk
		// it on every change.
		ts.ahead = nil
		return
	}
	maps.DeleteFunc(ts.ahead, func(_ uint32, s uint64) bool { return s <= ts.sync })
	if len(ts.ahead) == 0 {
		ts.ahead = nil
	}
}

// subscribedNames lists the names the client subscribed to.
func (ts *typeState) subscribedNames() []string {
	out := ts.slots.namesOf(ts.sub, make([]string, 0, ts.nsub))
	for n, o := range ts.other {
		if o.subscribed {
			out = append(out, n)
		}
	}
	return out
}

// sentNames lists the names the client was sent and did not subscribe to
// (what a wildcard brought it).
func (ts *typeState) sentNames() []string {
	only := make(bitset, len(ts.held))
	for i, w := range ts.held {
		if i < len(ts.sub) {
			w &^= ts.sub[i]
		}
		only[i] = w
	}
	out := ts.slots.namesOf(only, nil)
	for n, o := range ts.other {
		if o.hasSent && !o.subscribed {
			out = append(out, n)
		}
	}
	return out
}

// refs counts the subscribed names that make the stream watch rn in the
// cache: rn itself, and the short names that resolve to it.
func (ts *typeState) refs(rn string) int {
	n := len(ts.requesters[rn])
	if ts.isSubscribed(rn) {
		n++
	}
	return n
}

// subscribeName records a subscription to name, served as rn. It must be
// called after the cache watches rn: a bit is set only for a name that
// the stream is told of when it goes (see slots.go).
func (ts *typeState) subscribeName(name, rn string) {
	if ts.isSubscribed(name) {
		return
	}
	o, slot, alive, _ := ts.where(name)
	if o == nil && alive {
		ts.sub.set(slot)
	} else {
		ts.edit(name, func(s *nameState) { s.subscribed = true })
	}
	ts.nsub++
	ts.digest += nameHash(name)
	if rn != name {
		if ts.resolved == nil {
			ts.resolved, ts.requesters = map[string]string{}, map[string][]string{}
		}
		ts.resolved[name] = rn
		ts.requesters[rn] = append(ts.requesters[rn], name)
	}
}

// unsubscribeName undoes subscribeName and forgets what was sent for
// name. It returns the name to drop from the cache's watch, or "" when
// another subscribed name still needs it.
func (ts *typeState) unsubscribeName(name string) string {
	if !ts.isSubscribed(name) {
		return ""
	}
	o, slot, _, ok := ts.where(name)
	switch {
	case o != nil:
		delete(ts.other, name)
	case ok:
		ts.clearSlot(slot)
	}
	ts.nsub--
	ts.digest -= nameHash(name)
	delete(ts.unknown, name)
	rn := name
	if r, ok := ts.resolved[name]; ok {
		rn = r
		delete(ts.resolved, name)
		rs := ts.requesters[rn]
		for i, s := range rs {
			if s == name {
				rs = append(rs[:i], rs[i+1:]...)
				break
			}
		}
		if len(rs) == 0 {
			delete(ts.requesters, rn)
		} else {
			ts.requesters[rn] = rs
		}
	}
	if ts.refs(rn) > 0 {
		return ""
	}
	return rn
}
