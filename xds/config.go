package xds

import (
	"context"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// This file answers "what does this client have?" for CSDS and
// /debug/config_dump. A stream keeps, per name, only whether it is in step
// with the cache (see typeState), not the bytes: the question is put to the stream's own
// goroutine (stream.queries), which reads its state and looks the sent
// versions up in the cache. That costs nothing per client until somebody
// asks; a version the cache no longer holds (the client is about to get a
// newer one) is reported without its bytes.

// ClientConfig is what one connected client was last sent.
type ClientConfig struct {
	Status ClientStatus
	// Node is the client's node; nil before its first request names one.
	Node *corev3.Node
	// Types lists, per type, the names the client subscribed to or was
	// sent, sorted by name.
	Types [numTypes][]NameConfig
	// Unanswered is set when the stream did not answer in time (its
	// client is not reading): Status is then all there is.
	Unanswered bool
}

// NameConfig is one name of one type as a client has it.
type NameConfig struct {
	Name string
	// Sent is set when the client was sent a version of the name; Version
	// is then that version, or "" when a later one replaced it in the
	// cache before the client was sent that (a stream keeps no version of
	// a name the cache holds, see typeState).
	Sent    bool
	Version string
	// Resource is the version sent, as it went on the wire; nil when not
	// sent, or when the cache no longer holds that version.
	Resource *anypb.Any
	// Exists is whether the cache holds the name for this client now;
	// Current is then the version it holds (what the client should have),
	// and CurrentSince when the change that made it happened (zero when
	// unknown, as for the first world).
	Exists       bool
	Current      string
	CurrentSince time.Time
	// CurrentResource is that version, when the client was not sent it
	// (Resource is then the version sent, if the cache still holds it:
	// it does not keep versions no client should have).
	CurrentResource *anypb.Any
	// Subscribed is whether the client asked for the name (else a
	// wildcard brought it).
	Subscribed bool
}

// TypeURL returns the type URL of resource type t, as TypeStatus and
// ClientConfig.Types index them.
func TypeURL(t int) string { return typeURLs[t] }

// NumTypes is the number of resource types, the length of the per-type
// arrays of ClientStatus and ClientConfig.
const NumTypes = int(numTypes)

// queryTimeout bounds how long a query waits for a stream busy sending to
// a client that does not read.
const queryTimeout = time.Second

// ClientConfigs returns what every connected client, or only those whose
// node id is nodeID when it is not "", was last sent, ordered by stream.
func (s *Server) ClientConfigs(ctx context.Context, nodeID string) []ClientConfig {
	var out []ClientConfig
	for _, st := range s.sortedStreams() {
		status := st.snapshot()
		if nodeID != "" && status.NodeID != nodeID {
			continue
		}
		out = append(out, st.config(ctx, status))
	}
	return out
}

// config asks st's goroutine for its configuration.
func (st *stream) config(ctx context.Context, status ClientStatus) ClientConfig {
	reply := make(chan ClientConfig, 1)
	q := func() { reply <- st.readConfig() }
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	select {
	case st.queries <- q:
	case <-ctx.Done():
		return ClientConfig{Status: status, Unanswered: true}
	}
	select {
	case c := <-reply:
		return c
	case <-ctx.Done():
		return ClientConfig{Status: status, Unanswered: true}
	}
}

// readConfig runs on the stream's goroutine.
func (st *stream) readConfig() ClientConfig {
	c := ClientConfig{Status: st.snapshot(), Node: st.node}
	for t := range numTypes {
		ts := st.types[t]
		names := append(ts.subscribedNames(), ts.sentNames()...)
		slices.Sort(names)
		for _, name := range names {
			nc := NameConfig{Name: name, Sent: ts.had(name), Subscribed: ts.isSubscribed(name)}
			r := st.peek(ts, t, name)
			held := r != nil && ts.holds(name, r)
			nc.Exists = r != nil
			if r != nil {
				nc.Current = r.Version()
				if !held {
					nc.CurrentResource = r.Any()
				}
				if r.trigger != 0 {
					nc.CurrentSince = time.Unix(0, r.trigger)
				}
			}
			switch o := ts.other[name]; {
			case held:
				nc.Version, nc.Resource = r.Version(), r.Any()
			case o != nil && o.hasSent:
				nc.Version = versionString(o.sent)
			}
			c.Types[t] = append(c.Types[t], nc)
		}
	}
	return c
}

// peek is lookup without its side effects: the resource name gets for
// this client now, the unknown listener included.
func (st *stream) peek(ts *typeState, t typeIndex, name string) *Resource {
	if r := st.current(ts, t, name); r != nil {
		return r
	}
	return ts.unknown[name]
}

// current returns the resource name gets for this client now, named as
// subscribed (its variant, or the alias listener for an alias or a short
// name), or nil; the one lookup of lookup and peek.
func (st *stream) current(ts *typeState, t typeIndex, name string) *Resource {
	var r *Resource
	rn, short := ts.resolved[name]
	if short {
		r = st.srv.cache.getAlias(name, rn)
	} else {
		rn = name
		r = st.srv.cache.getView(t, name, st.view[t])
	}
	// A Service the client may not see is, to it, a Service that does not
	// exist (visibility.go): here, for every path that reads what a client
	// gets, the stream's lookups and the debug and CSDS views alike.
	if r != nil && !st.srv.cache.visible(t, rn, st.client) {
		return nil
	}
	// A wildcard brings a client only the listeners of its scope.
	if r != nil && !inScope(t, r, st.client) && !ts.isSubscribed(name) {
		return nil
	}
	return r
}
