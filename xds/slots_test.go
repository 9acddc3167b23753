package xds

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// directStream is a SotW stream driven by the test, without a goroutine:
// requests go to handleSotW, changes are taken when the test says, and
// responses are kept.
type directStream struct {
	*stream
	resps []*discoveryv3.DiscoveryResponse
}

func newDirectStream(t *testing.T, srv *Server, id int64) *directStream {
	t.Helper()
	d := &directStream{stream: newStream(id, srv)}
	d.send = func(r *discoveryv3.DiscoveryResponse) error { d.resps = append(d.resps, r); return nil }
	seq := srv.cache.register(d.w)
	for ty := range numTypes {
		d.types[ty].advance(seq)
	}
	t.Cleanup(func() { srv.cache.unregister(d.w) })
	return d
}

func (d *directStream) request(t *testing.T, typeURL string, names ...string) {
	t.Helper()
	nonce := ""
	if n := len(d.resps); n > 0 {
		nonce = d.resps[n-1].GetNonce()
	}
	if err := d.handleSotW(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names, ResponseNonce: nonce}); err != nil {
		t.Fatal(err)
	}
}

// changes takes what changed and returns the names of the assignments
// sent.
func (d *directStream) changes(t *testing.T) []string {
	t.Helper()
	before := len(d.resps)
	if err := d.handleChanges(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range d.resps[before:] {
		for _, a := range r.GetResources() {
			var cla endpointv3.ClusterLoadAssignment
			if err := a.UnmarshalTo(&cla); err != nil {
				t.Fatal(err)
			}
			out = append(out, cla.GetClusterName())
		}
	}
	slices.Sort(out)
	return out
}

func slotOf(t *testing.T, c *Cache, ty typeIndex, name string) uint32 {
	t.Helper()
	slot, alive, ok := c.slots[ty].lookup(name)
	if !ok || !alive {
		t.Fatalf("%v %s has no live slot", ty, name)
	}
	return slot
}

// A name's slot is given to another name only once every stream that may
// hold bits for it has taken the change that removed it; then the stream
// keeps its subscription to the name that went, and knows nothing of the
// name that took the slot.
func TestTombstoneWaitsForStreams(t *testing.T) {
	c := newTestCache()
	apply(t, c, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	srv := NewServer(c, ServerOptions{})
	st := newDirectStream(t, srv, 1)
	st.request(t, resourcev3.EndpointType, "a", "b")
	if n := len(st.resps); n != 1 {
		t.Fatalf("%d responses to the subscription, want 1", n)
	}
	slotA := slotOf(t, c, endpointType, "a")

	apply(t, c, false, map[string]*model.Resources{"ns/a": nil})
	apply(t, c, false, map[string]*model.Resources{"ns/z": svc("z", 1)})
	if slotOf(t, c, endpointType, "z") == slotA {
		t.Fatal("a's slot went to z before the stream took a's removal")
	}
	if got := st.changes(t); len(got) != 0 {
		t.Fatalf("sent %v for a removal and a name not subscribed, want nothing (EDS removals are not sent in SotW)", got)
	}
	apply(t, c, false, map[string]*model.Resources{"ns/y": svc("y", 1)})
	if slotOf(t, c, endpointType, "y") != slotA {
		t.Fatal("a's slot was not given to y once every stream had taken a's removal: tombstones would pile up")
	}
	ts := st.types[endpointType]
	if !ts.isSubscribed("a") || ts.isSubscribed("y") || ts.had("y") || ts.nsub != 2 {
		t.Fatalf("after the slot moved: subscribed a %v, y %v, sent y %v, %d subscribed; want true, false, false, 2", ts.isSubscribed("a"), ts.isSubscribed("y"), ts.had("y"), ts.nsub)
	}
	// a comes back: the stream, still subscribed, is sent it.
	apply(t, c, false, map[string]*model.Resources{"ns/a": svc("a", 2)})
	if got := st.changes(t); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("a came back: sent %v, want [a]", got)
	}
	if got := st.changes(t); len(got) != 0 {
		t.Fatalf("nothing changed: sent %v", got)
	}
}

// A stream of many names is told of every change of the type and keeps no
// entry per name in the cache's index; below half as many it is watched by
// name again. Either way it is sent what changed of its names, and nothing
// else.
func TestManyNamesWatchAll(t *testing.T) {
	c := newTestCache()
	world := map[string]*model.Resources{}
	var names []string
	for i := range watchAllMin + 50 {
		n := fmt.Sprintf("s%03d", i)
		names = append(names, n)
		world["ns/"+n] = svc(n, 1)
	}
	world["ns/other"] = svc("other", 1)
	apply(t, c, true, world)
	srv := NewServer(c, ServerOptions{})
	st := newDirectStream(t, srv, 1)
	entries := func() int {
		c.mu.RLock()
		defer c.mu.RUnlock()
		n := 0
		for _, ws := range c.byName[endpointType] {
			if slices.Contains(ws, st.w) {
				n++
			}
		}
		return n
	}
	all := func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		_, ok := c.wildcard[endpointType][st.w]
		return ok
	}
	change := func(n string, w uint32) []string {
		apply(t, c, false, map[string]*model.Resources{"ns/" + n: svc(n, w)})
		return st.changes(t)
	}

	st.request(t, resourcev3.EndpointType, names[:100]...)
	if entries() != 100 || all() {
		t.Fatalf("100 names: %d entries, told of everything %v; want 100, false", entries(), all())
	}
	st.request(t, resourcev3.EndpointType, names...)
	if entries() != 0 || !all() {
		t.Fatalf("%d names: %d entries, told of everything %v; want 0, true", len(names), entries(), all())
	}
	if got := change(names[7], 2); !slices.Equal(got, names[7:8]) {
		t.Fatalf("one subscribed name changed: sent %v", got)
	}
	if got := change("other", 2); len(got) != 0 {
		t.Fatalf("a name not subscribed changed: sent %v", got)
	}
	// Down to 200 names: still above half, still told of everything.
	st.request(t, resourcev3.EndpointType, names[:200]...)
	if entries() != 0 || !all() {
		t.Fatalf("200 names: %d entries, told of everything %v; want 0, true", entries(), all())
	}
	st.request(t, resourcev3.EndpointType, names[:100]...)
	if entries() != 100 || all() {
		t.Fatalf("back to 100 names: %d entries, told of everything %v; want 100, false", entries(), all())
	}
	if got := change(names[9], 2); !slices.Equal(got, names[9:10]) {
		t.Fatalf("one subscribed name changed: sent %v", got)
	}
	if got := change(names[150], 2); len(got) != 0 {
		t.Fatalf("a name no longer subscribed changed: sent %v", got)
	}
}

// A sidecar that reconnects while Switchboard starts (the cache not ready)
// brings the versions it holds: the stream keeps them exactly until the
// world arrives, sends only what differs, and then holds every name as
// bits, not as an exact entry each (1000 sidecars reconnect at once after
// a restart).
func TestReconnectBeforeReadyEndsInBits(t *testing.T) {
	c := newTestCache()
	world := map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1), "ns/c": svc("c", 1)}
	apply(t, c, false, world)
	if c.Ready() {
		t.Fatal("ready before a full update")
	}
	srv := NewServer(c, ServerOptions{})
	st := newStream(1, srv)
	var sent [][]string
	st.sendDelta = func(r *discoveryv3.DeltaDiscoveryResponse) error {
		var names []string
		for _, res := range r.GetResources() {
			names = append(names, res.GetName())
		}
		sent = append(sent, names)
		return nil
	}
	seq := c.register(st.w)
	t.Cleanup(func() { c.unregister(st.w) })
	for ty := range numTypes {
		st.types[ty].advance(seq)
	}
	c.mu.RLock()
	current := c.resources[endpointType]["a"].Version()
	c.mu.RUnlock()
	if err := st.handleDelta(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl:                 resourcev3.EndpointType,
		ResourceNamesSubscribe:  []string{"a", "b", "c"},
		InitialResourceVersions: map[string]string{"a": current, "b": "0000000000000001"},
	}); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 0 {
		t.Fatalf("sent %v before the cache was ready", sent)
	}
	apply(t, c, true, world)
	if err := st.handleChanges(); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 1 || !slices.Equal(sent[0], []string{"b", "c"}) {
		t.Fatalf("sent %v once ready, want [[b c]] (a is held at its current version)", sent)
	}
	ts := st.types[endpointType]
	if len(ts.other) != 0 {
		t.Fatalf("exact entries left once in step: %v", slices.Collect(maps.Keys(ts.other)))
	}
	for _, n := range []string{"a", "b", "c"} {
		if !ts.isSubscribed(n) || !ts.had(n) {
			t.Fatalf("%s: subscribed %v, sent %v; want both", n, ts.isSubscribed(n), ts.had(n))
		}
	}
}
