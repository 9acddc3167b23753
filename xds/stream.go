package xds

import (
	"context"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchboard-xds/switchboard/translator"
)

// typeState is one stream's SotW protocol state for one resource type.
type typeState struct {
	started    bool
	wildcard   bool
	subscribed map[string]struct{}
	// sent holds, per name, the version last sent: what the client has, or
	// has rejected. A resource is sent again only when its version differs,
	// so a rejected version is never sent twice to the same client.
	sent  map[string]string
	nonce string
	// resolved maps a short name ("S:P", "S") to the name it stands for in
	// the client's namespace ("S.NS:P", "S.NS"); requesters is the reverse,
	// and watchRefs counts the subscribed names behind each watched name.
	resolved   map[string]string
	requesters map[string][]string
	watchRefs  map[string]int
	// unknown holds the UnknownListener built for each subscribed
	// listener name that names no Service (built per stream: typos are
	// rare and should not grow a shared map).
	unknown map[string]*Resource
	// known holds the listener names this client was given a real
	// listener for.
	known map[string]struct{}
	// status is what /debug/clients shows.
	status TypeStatus
}

// stream is one ADS stream (one client connection's SotW session). Its
// protocol state is owned by the goroutine running serve; statusMu guards
// only the copy that the debug endpoint reads.
type stream struct {
	id  int64
	srv *Server
	// ns is the client's namespace (node metadata NAMESPACE), for short
	// names; "" when the client did not say.
	ns string
	// view holds, per type, the keys of the variants this client gets, in
	// the order they are tried (see viewKeys); nil for none.
	view    [numTypes][]string
	w       *subscriber
	send    func(*discoveryv3.DiscoveryResponse) error
	node    *corev3.Node
	types   [numTypes]*typeState
	nonce   int64
	started time.Time

	statusMu sync.Mutex
	status   ClientStatus
}

func newStream(id int64, srv *Server, send func(*discoveryv3.DiscoveryResponse) error) *stream {
	st := &stream{id: id, srv: srv, w: newSubscriber(), send: send, started: time.Now()}
	for t := range numTypes {
		st.types[t] = &typeState{
			subscribed: map[string]struct{}{}, sent: map[string]string{},
			resolved: map[string]string{}, requesters: map[string][]string{}, watchRefs: map[string]int{},
			unknown: map[string]*Resource{}, known: map[string]struct{}{},
		}
	}
	st.status = ClientStatus{Stream: id, ConnectedAt: st.started}
	return st
}

// serve runs the stream until the client goes away, ctx ends or the server
// drains.
func (st *stream) serve(ctx context.Context, reqs <-chan *discoveryv3.DiscoveryRequest, recvErr func() error) error {
	c := st.srv.cache
	c.register(st.w)
	defer c.unregister(st.w)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-st.srv.draining:
			return errDraining
		case req, ok := <-reqs:
			if !ok {
				return recvErr()
			}
			if err := st.handleRequest(req); err != nil {
				return err
			}
		case <-st.w.signal:
			if err := st.handleChanges(); err != nil {
				return err
			}
		}
	}
}

func (st *stream) logger() *slog.Logger {
	return st.srv.log.With("stream", st.id, "node", st.node.GetId())
}

func (st *stream) handleRequest(req *discoveryv3.DiscoveryRequest) error {
	if req.GetNode() != nil && st.node == nil {
		st.node = req.GetNode()
		st.ns = st.node.GetMetadata().GetFields()["NAMESPACE"].GetStringValue()
		st.view = viewKeys(st.node)
		st.updateStatus(func(s *ClientStatus) {
			s.NodeID = st.node.GetId()
			s.UserAgent = st.node.GetUserAgentName() + " " + st.node.GetUserAgentVersion()
			s.Zone = st.node.GetLocality().GetZone()
		})
	}
	t, ok := typeOf(req.GetTypeUrl())
	if !ok {
		st.logger().Debug("ignoring request for a type Switchboard does not serve", "type_url", req.GetTypeUrl())
		return nil
	}
	ts := st.types[t]
	if ts.nonce != "" && req.GetResponseNonce() != ts.nonce {
		// A request that answers an older response: the client will answer
		// the newest one too (xDS protocol, "resource updates").
		return nil
	}
	switch {
	case req.GetErrorDetail() != nil:
		st.srv.metrics.nack(t)
		st.logger().Warn("client rejected xDS response",
			"type", t.String(), "version", req.GetVersionInfo(), "nonce", req.GetResponseNonce(),
			"error", req.GetErrorDetail().GetMessage())
		ts.status.Nacks++
		ts.status.LastNack = req.GetErrorDetail().GetMessage()
		ts.status.LastNackAt = time.Now()
	case req.GetResponseNonce() != "":
		ts.status.AckedVersion = req.GetVersionInfo()
	}

	added, removed, wildcard := st.diffSubscription(t, ts, req.GetResourceNames())
	first := !ts.started
	ts.started = true
	if first || len(added) > 0 || len(removed) > 0 || wildcard != ts.wildcard {
		ts.wildcard = wildcard
		var watchAdd, watchRemove []string
		for _, n := range removed {
			delete(ts.subscribed, n)
			delete(ts.sent, n)
			delete(ts.unknown, n)
			delete(ts.known, n)
			if rn := ts.forget(n); rn != "" {
				watchRemove = append(watchRemove, rn)
			}
		}
		for _, n := range added {
			ts.subscribed[n] = struct{}{}
			if rn := ts.remember(n, st.resolve(t, n)); rn != "" {
				watchAdd = append(watchAdd, rn)
			}
		}
		st.srv.cache.watch(st.w, t, wildcard, watchAdd, watchRemove)
		ts.status.Subscribed = len(ts.subscribed)
		ts.status.Wildcard = wildcard
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
func (st *stream) diffSubscription(t typeIndex, ts *typeState, names []string) (added, removed []string, wildcard bool) {
	wildcard = t.fullState() && ((!ts.started && len(names) == 0) || (ts.wildcard && len(names) == 0) || slices.Contains(names, "*"))
	// Fast path for the common case, an ACK that repeats the subscription:
	// every name known and as many names as subscribed means no change (a
	// SotW ACK carries every subscribed name, so this runs per ACK; it
	// allocates nothing). A request that repeated one name and dropped
	// another would pass for unchanged until the next request; no xDS
	// client repeats a name.
	if len(names) == len(ts.subscribed) {
		same := true
		for _, n := range names {
			if _, ok := ts.subscribed[n]; !ok {
				same = false
				break
			}
		}
		if same {
			return nil, nil, wildcard
		}
	}
	want := make(map[string]struct{}, len(names))
	for _, n := range names {
		if n == "*" {
			continue
		}
		want[n] = struct{}{}
		if _, ok := ts.subscribed[n]; !ok {
			added = append(added, n)
		}
	}
	for n := range ts.subscribed {
		if _, ok := want[n]; !ok {
			removed = append(removed, n)
		}
	}
	return added, removed, wildcard
}

func (st *stream) handleChanges() error {
	pending, ready := st.w.take()
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
		if ready {
			err = st.respond(t, t.fullState(), keys(ts.subscribed))
		} else if len(pending[t]) > 0 {
			names := keys(pending[t])
			for n := range pending[t] {
				names = append(names, ts.requesters[n]...)
			}
			err = st.respond(t, false, names)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
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
			if _, ok := ts.subscribed[n]; !ok {
				continue
			}
			if r := st.get(ts, t, n); r != nil && ts.sent[n] != r.Version {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			return nil
		}
		for _, r := range out {
			ts.sent[r.Name] = r.Version
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
		if _, ok := ts.subscribed[n]; !ok && !ts.wildcard {
			continue
		}
		r := st.get(ts, t, n)
		v, had := ts.sent[n]
		changed = (r == nil && had) || (r != nil && r.Version != v)
	}
	if !changed {
		return nil
	}
	var out []*Resource
	if ts.wildcard {
		out = c.all(t)
	}
	for n := range ts.subscribed {
		if r := st.get(ts, t, n); r != nil && !(ts.wildcard && c.has(t, n)) {
			out = append(out, r)
		}
	}
	clear(ts.sent)
	for _, r := range out {
		ts.sent[r.Name] = r.Version
	}
	return st.sendResources(t, out)
}

func (st *stream) sendResources(t typeIndex, out []*Resource) error {
	slices.SortFunc(out, func(a, b *Resource) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	h := fnv.New64a()
	anys := make([]*anypb.Any, len(out))
	for i, r := range out {
		anys[i] = r.Any
		_, _ = h.Write([]byte(r.Name))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(r.Version))
		_, _ = h.Write([]byte{0})
	}
	st.nonce++
	ts := st.types[t]
	ts.nonce = strconv.FormatInt(st.nonce, 10)
	resp := &discoveryv3.DiscoveryResponse{
		VersionInfo: strconv.FormatUint(h.Sum64(), 16),
		Resources:   anys,
		TypeUrl:     typeURLs[t],
		Nonce:       ts.nonce,
	}
	ts.status.SentVersion = resp.VersionInfo
	ts.status.Responses++
	st.publishType(t)
	st.srv.metrics.response(t, len(out))
	return st.send(resp)
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

// resolve returns the name a subscribed name stands for: a listener name
// without a dot in its host ("S:P", "S") is a Service in the client's own
// namespace, as DNS search paths would read it.
func (st *stream) resolve(t typeIndex, name string) string {
	if t != listenerType || st.ns == "" {
		return name
	}
	host, port, hasPort := strings.Cut(name, ":")
	if host == "" || strings.Contains(host, ".") {
		return name
	}
	if hasPort {
		return host + "." + st.ns + ":" + port
	}
	return host + "." + st.ns
}

// get returns the resource a subscribed name gets, named as subscribed. A
// listener name that names no Service gets translator.UnknownListener, so
// that the client fails fast with an error naming it.
func (st *stream) get(ts *typeState, t typeIndex, name string) *Resource {
	var r *Resource
	if rn, ok := ts.resolved[name]; ok {
		r = st.srv.cache.getAlias(name, rn)
	} else {
		r = st.srv.cache.getView(t, name, st.view[t])
	}
	if r != nil {
		if t == listenerType {
			ts.known[name] = struct{}{}
		}
		return r
	}
	// A name the client had a real listener for was deleted: leave it
	// out, so the client reports the removal. A name that never existed
	// for this client gets the unknown listener.
	if _, had := ts.known[name]; t == listenerType && !ts.wildcard && !had {
		r = ts.unknown[name]
		if r == nil {
			r, _ = newResource(name, translator.UnknownListener(name))
			if r != nil {
				ts.unknown[name] = r
			}
		}
	}
	return r
}

// remember records that name is served as rn and returns the name to add
// to the cache's watch, or "" when it is watched already.
func (ts *typeState) remember(name, rn string) string {
	if rn != name {
		ts.resolved[name] = rn
		ts.requesters[rn] = append(ts.requesters[rn], name)
	}
	ts.watchRefs[rn]++
	if ts.watchRefs[rn] == 1 {
		return rn
	}
	return ""
}

// forget undoes remember and returns the name to drop from the watch, or
// "" when another subscribed name still needs it.
func (ts *typeState) forget(name string) string {
	rn := name
	if r, ok := ts.resolved[name]; ok {
		rn = r
		delete(ts.resolved, name)
		ts.requesters[rn] = slices.DeleteFunc(ts.requesters[rn], func(s string) bool { return s == name })
		if len(ts.requesters[rn]) == 0 {
			delete(ts.requesters, rn)
		}
	}
	ts.watchRefs[rn]--
	if ts.watchRefs[rn] > 0 {
		return ""
	}
	delete(ts.watchRefs, rn)
	return rn
}
