package xds

import (
	"context"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchboard-xds/switchboard/model"
)

// stream is one ADS stream: one client connection's session, state of the
// world (sotw.go) or incremental (delta.go). Its protocol state is owned by
// the goroutine running serve; statusMu guards only the copy that the debug
// endpoint reads.
type stream struct {
	id  int64
	srv *Server
	// ctx is the stream's context, for ServerOptions.Authorize.
	ctx context.Context
	// client is what model.Client decides about this client from its
	// node (class, zone, namespace for short names); zero before the node.
	client model.Client
	// view holds, per type, the views whose variants this client gets, in
	// the order they are tried (see model.Client.Views); nil for none.
	view [model.NumResourceTypes][]model.View
	w    *subscriber
	// Exactly one of send and sendDelta is set: the stream's protocol.
	send      func(*discoveryv3.DiscoveryResponse) error
	sendDelta func(*discoveryv3.DeltaDiscoveryResponse) error
	node      *corev3.Node
	types     [numTypes]*typeState
	nonce     int64
	started   time.Time
	// nackLog spaces the stream's NACK log lines (limits.go).
	nackLog nackLog
	conv    convergence // see convergence.go
	// nackedTypes has bit t set while the client's last answer to a response
	// of type t was a NACK (set by nackedResponse, cleared by
	// ackedResponse); read by the nackedStreams collector.
	nackedTypes atomic.Uint32
	// queries carries questions to the stream's goroutine (config.go).
	queries chan func()

	statusMu sync.Mutex
	status   ClientStatus
}

func newStream(id int64, srv *Server) *stream {
	st := &stream{id: id, srv: srv, w: newSubscriber(), started: time.Now(), nackLog: newNackLog(srv.limits), queries: make(chan func())}
	st.w.evict = st.evict
	for t := range numTypes {
		st.types[t] = newTypeState(srv.cache.slots[t])
	}
	st.status = ClientStatus{Stream: id, Protocol: "sotw", ConnectedAt: st.started}
	return st
}

// serve runs st until the client goes away, ctx ends or the server drains:
// handle takes each request, and changes in the cache reach the client
// through handleChanges.
func serve[R any](ctx context.Context, st *stream, reqs <-chan R, handle func(R) error, recvErr func() error) error {
	c := st.srv.cache
	// The stream's state is its goroutine's, except while it sends: then
	// the cache may move it off tombstones for it (subscriber.evictFor),
	// so that a client that does not read holds back no slot.
	var running sync.Mutex
	running.Lock()
	defer running.Unlock()
	st.w.running = &running
	if send := st.send; send != nil {
		st.send = func(r *discoveryv3.DiscoveryResponse) error {
			running.Unlock()
			defer running.Lock()
			return send(r)
		}
	}
	if send := st.sendDelta; send != nil {
		st.sendDelta = func(r *discoveryv3.DeltaDiscoveryResponse) error {
			running.Unlock()
			defer running.Lock()
			return send(r)
		}
	}
	seq := c.register(st.w)
	for t := range numTypes {
		st.types[t].advance(seq)
	}
	defer c.unregister(st.w)
	first := time.NewTimer(st.srv.limits.FirstRequestTimeout)
	defer first.Stop()
	firstC := first.C // nil once a request came (Limits.FirstRequestTimeout)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-st.srv.draining:
			return errDraining
		case <-firstC:
			return st.srv.noFirstRequest()
		case req, ok := <-reqs:
			if !ok {
				return recvErr()
			}
			firstC = nil
			if err := handle(req); err != nil {
				return err
			}
		case <-st.w.signal:
			if err := st.handleChanges(); err != nil {
				return err
			}
		case q := <-st.queries:
			q()
		}
	}
}

func (st *stream) logger() *slog.Logger {
	return st.srv.log.With("stream", st.id, "node", st.node.GetId())
}

// nextNonce numbers the stream's next response, of type t.
func (st *stream) nextNonce(t typeIndex) string {
	st.nonce++
	st.types[t].nonce = strconv.FormatInt(st.nonce, 10)
	return st.types[t].nonce
}

// responseVersion is the version of a response that carries out (sorted
// by name) and removes gone: a digest of names and versions, so that the
// same content has the same version on every replica.
func responseVersion(out []*Resource, gone []string) string {
	h := fnv.New64a()
	var v [16]byte
	for _, r := range out {
		_, _ = h.Write([]byte(r.Name))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write(appendVersion(v[:0], r.v))
		_, _ = h.Write([]byte{0})
	}
	for _, n := range gone {
		_, _ = h.Write([]byte(n))
		_, _ = h.Write([]byte{1})
	}
	return strconv.FormatUint(h.Sum64(), 16)
}

// recordResponse notes a response of type t, version version, carrying n
// resources, in the stream's status and the metrics; the one bookkeeping
// of both protocols.
func (st *stream) recordResponse(t typeIndex, version string, n int) {
	ts := st.types[t]
	ts.status.SentVersion = version
	ts.status.Responses++
	st.sentResponse(t)
	st.publishType(t)
	st.srv.metrics.response(t, n)
}

// begin starts on a request of either protocol: it learns the node from
// the first request that names one, and returns the request's type, or
// false for a type Switchboard does not serve (such requests are ignored).
// An error (the node is not authorized) ends the stream.
func (st *stream) begin(node *corev3.Node, typeURL string) (typeIndex, bool, error) {
	if err := st.setNode(node); err != nil {
		return 0, false, err
	}
	t, ok := typeOf(typeURL)
	if !ok {
		st.logger().Debug("ignoring request for a type Switchboard does not serve", "type_url", typeURL)
	}
	return t, ok, nil
}

// setNode records who the client is, from the first request that names a
// node: its namespace for short names, and the views it gets. A node that
// ServerOptions.Authorize refuses is not recorded, and the error returned.
func (st *stream) setNode(node *corev3.Node) error {
	if node == nil || st.node != nil {
		return nil
	}
	// Kept, logged and shown to Authorize cut short (Limits.MaxNodeIDBytes),
	// and only what Switchboard reads (keptNode).
	idBytes := len(node.GetId())
	agent := st.srv.cutCounted(limitNodeID, node.GetUserAgentName()+" "+node.GetUserAgentVersion(), st.srv.limits.MaxNodeIDBytes)
	node = st.srv.keptNode(node)
	if st.srv.authorize != nil {
		if err := st.srv.authorize(st.ctx, node); err != nil {
			return err
		}
	}
	st.node = node
	st.client = ClientOf(node)
	st.view = st.client.Views()
	st.srv.metrics.identified(st)
	st.updateStatus(func(s *ClientStatus) {
		s.NodeID = node.GetId()
		if idBytes > st.srv.limits.MaxNodeIDBytes {
			s.NodeIDBytes = idBytes
		}
		s.UserAgent = agent
		s.Class = st.client.Class
		s.Zone = st.client.Zone
	})
	return nil
}

// keptNode returns the part of node that Switchboard reads, which is all a
// stream keeps (and CSDS shows): the id and cluster, the locality, the user
// agent name and version, and the metadata key NAMESPACE
// (ClientOf, the mTLS check). Each string is cut to
// Limits.MaxNodeIDBytes (the id counted under limitNodeID). Every other
// field (extensions, client_features, listening_addresses, the user agent
// build version, dynamic_parameters) and every other metadata key is
// dropped, however large the client made it, and its wire size counted in
// switchboard_xds_node_dropped_bytes_total: a node is otherwise held for
// the stream's life, and a client may send megabytes of metadata.
func (s *Server) keptNode(node *corev3.Node) *corev3.Node {
	max := s.limits.MaxNodeIDBytes
	c := func(v string) string { out, _ := cut(v, max); return out }
	kept := &corev3.Node{
		Id:            s.cutCounted(limitNodeID, node.GetId(), max),
		Cluster:       c(node.GetCluster()),
		UserAgentName: c(node.GetUserAgentName()),
	}
	if v := node.GetUserAgentVersion(); v != "" {
		kept.UserAgentVersionType = &corev3.Node_UserAgentVersion{UserAgentVersion: c(v)}
	}
	if l := node.GetLocality(); l != nil {
		kept.Locality = &corev3.Locality{Region: c(l.GetRegion()), Zone: c(l.GetZone()), SubZone: c(l.GetSubZone())}
	}
	if ns, ok := node.GetMetadata().GetFields()[NodeNamespaceKey]; ok {
		kept.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{NodeNamespaceKey: structpb.NewStringValue(c(ns.GetStringValue()))}}
	}
	s.metrics.nodeBytesDropped(proto.Size(node) - proto.Size(kept))
	return kept
}

// subscribe applies a change of subscription to type t: names added and
// removed, and whether the client now watches every name of the type. The
// cache's watch follows, before anything is read for the client, and
// before a name added is recorded (typeState.subscribeName).
func (st *stream) subscribe(t typeIndex, added, removed []string, wildcard bool) {
	ts := st.types[t]
	if ts.wildcard && !wildcard {
		ts.forgetUnsubscribed()
	}
	ts.wildcard = wildcard
	var watchAdd, watchRemove []string
	for _, n := range removed {
		if rn := ts.unsubscribeName(n); rn != "" {
			watchRemove = append(watchRemove, rn)
		}
	}
	// The cache's copy of each name, so that a thousand clients of one
	// name hold one string where a stream keeps names.
	added = st.srv.cache.internAll(t, added)
	resolved := make([]string, len(added))
	var adding map[string]struct{}
	for i, n := range added {
		rn := st.resolve(t, n)
		resolved[i] = rn
		if ts.refs(rn) > 0 {
			continue
		}
		if _, dup := adding[rn]; dup {
			continue
		}
		if adding == nil {
			adding = map[string]struct{}{}
		}
		adding[rn] = struct{}{}
		watchAdd = append(watchAdd, rn)
	}
	// A stream of many names is told of every change of the type, and
	// filters them itself: the cache then keeps no entry per name for it
	// (a sidecar subscribes to a route and an assignment per Service).
	n := ts.nsub + len(added) // removed names are unsubscribed already
	all := wildcard || n >= watchAllMin || ts.watchAll && n >= watchAllMin/2
	c := st.srv.cache
	switch {
	case all && !ts.watchAll:
		// Its names' entries go once it is told of every change.
		c.watch(st.w, t, true, nil, append(watchRemove, st.watchedNames(ts)...))
	case all:
		c.watch(st.w, t, true, nil, nil)
	case ts.watchAll:
		// Still told of every change while its names are recorded; then
		// watched by name, before it stops being told of every change.
		defer func() { c.watch(st.w, t, false, st.watchedNames(ts), nil) }()
	default:
		c.watch(st.w, t, false, watchAdd, watchRemove)
	}
	ts.watchAll = all
	for i, n := range added {
		ts.subscribeName(n, resolved[i])
	}
	ts.status.Subscribed = ts.nsub
	ts.status.Wildcard = wildcard
}

// watchAllMin is the number of subscribed names of a type from which a
// stream is told of every change of the type rather than of its names;
// it goes back to its names below half as many.
const watchAllMin = 256

// watchedNames lists the names of type t that the stream watches for its
// subscription: each subscribed name as it resolves, once.
func (st *stream) watchedNames(ts *typeState) []string {
	names := ts.subscribedNames()
	out := names[:0]
	seen := make(map[string]struct{}, len(names))
	for _, n := range names {
		rn := n
		if r, ok := ts.resolved[n]; ok {
			rn = r
		}
		if _, dup := seen[rn]; !dup {
			seen[rn] = struct{}{}
			out = append(out, rn)
		}
	}
	return out
}

// handleChanges brings the client up to date with what changed in the
// cache since it last looked.
func (st *stream) handleChanges() error {
	pending, ready, seq := st.srv.cache.take(st.w)
	for t := range numTypes {
		st.types[t].taking = seq
	}
	defer func() {
		for t := range numTypes {
			st.types[t].advance(seq)
		}
	}()
	if !st.srv.cache.Ready() {
		// Changes before the first full world are not served; becoming
		// ready brings every subscription up to date at once.
		return nil
	}
	for t := range numTypes {
		ts := st.types[t]
		if !ts.started {
			continue
		}
		var err error
		switch {
		case ready && st.sendDelta != nil:
			err = st.respondDelta(t, true, st.deltaEverything(t), nil)
		case ready:
			err = st.respond(t, t.fullState(), ts.subscribedNames())
		case len(pending[t]) > 0:
			names := keys(pending[t])
			for n := range pending[t] {
				names = append(names, ts.requesters[n]...)
			}
			if st.sendDelta != nil {
				err = st.respondDelta(t, false, names, nil)
			} else {
				err = st.respond(t, false, names)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// evict moves the stream's state off the slots of the names taken that
// the cache no longer holds (slots.go). It runs under the cache's read
// lock, so it reads only the slot tables.
func (st *stream) evict(pending *[numTypes]map[string]struct{}) {
	for t := range numTypes {
		for n := range pending[t] {
			st.types[t].evict(n)
		}
	}
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (st *stream) publishType(t typeIndex) {
	s := st.types[t].status
	st.updateStatus(func(cs *ClientStatus) { cs.Types[t] = s })
}

func (st *stream) updateStatus(f func(*ClientStatus)) {
	st.statusMu.Lock()
	f(&st.status)
	st.statusMu.Unlock()
}

func (st *stream) snapshot() ClientStatus {
	st.statusMu.Lock()
	defer st.statusMu.Unlock()
	return st.status
}

// resolve returns the name a subscribed name stands for (see
// model.Client.Resolve: short listener names).
func (st *stream) resolve(t typeIndex, name string) string {
	if t != listenerType {
		return name
	}
	return st.client.Resolve(name)
}

// get returns the resource a subscribed name gets, named as subscribed. A
// listener name that names no Service gets CacheOptions.UnknownListener, so
// that the client fails fast with an error naming it.
func (st *stream) get(ts *typeState, t typeIndex, name string) *Resource {
	if r := st.lookup(ts, t, name); r != nil {
		delete(ts.unknown, name)
		return r
	}
	// A name the client had a real listener for was deleted: leave it
	// out, so the client reports the removal. A name that never existed
	// for this client gets the unknown listener.
	if t != listenerType || ts.wildcard || ts.isKnown(name) {
		return nil
	}
	r := ts.unknown[name]
	if r == nil && len(ts.unknown) >= st.srv.limits.MaxUnknownListeners {
		st.unknownCapped(ts, name)
		return nil
	}
	if r == nil {
		if e, err := st.srv.cache.opts.UnknownListener(name); err == nil {
			r = encodedResource(typeURLs[listenerType], e)
			if ts.unknown == nil {
				ts.unknown = map[string]*Resource{}
			}
			ts.unknown[name] = r
		}
	}
	return r
}

// lookup returns the resource a subscribed name gets, named as subscribed,
// or nil when there is none: the client's variant if it has one, the alias
// listener for an alias or a short name; nil too for a Service this client
// may not see (see visibility.go).
func (st *stream) lookup(ts *typeState, t typeIndex, name string) *Resource {
	r := st.current(ts, t, name)
	if r != nil && t == listenerType {
		ts.setKnown(name)
	}
	return r
}
