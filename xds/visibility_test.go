package xds

import (
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// nsNode is a node in namespace ns (metadata NAMESPACE).
func nsNode(id, ns string) *corev3.Node {
	return &corev3.Node{Id: id, UserAgentName: "feature-test", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		"NAMESPACE": structpb.NewStringValue(ns),
	}}}
}

// dotted is svc(name, w) with the alias name+".svc": names with a dot,
// which a client with a namespace does not take for short names.
func dotted(name string, w uint32) *model.Resources {
	r := svc(name, w)
	r.Aliases = map[string]string{name + ".svc": name}
	return r
}

// limited is Service "a.ns" (dotted) visible to visibleTo.
func limited(w uint32, visibleTo ...string) *model.Resources {
	r := dotted("a.ns", w)
	r.Visibility = visibleTo
	return r
}

// listeners describes each listener of an LDS response: its name, then
// "?" when it is translator.UnknownListener.
func listeners(t *testing.T, r *discoveryv3.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		l := &listenerv3.Listener{}
		if err := a.UnmarshalTo(l); err != nil {
			t.Fatal(err)
		}
		name := l.GetName()
		hcm := &hcmv3.HttpConnectionManager{}
		if l.GetApiListener() != nil {
			if err := l.GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
				t.Fatal(err)
			}
		}
		if vh := hcm.GetRouteConfig().GetVirtualHosts(); len(vh) > 0 && slices.Contains(vh[0].GetDomains(), translator.UnknownDomain) {
			name += "?"
		}
		out = append(out, name)
	}
	return out
}

// A Service limited to some namespaces is served to clients of those, and
// to the others is a Service that does not exist: unknown listeners for its
// name and alias, absent from a wildcard and from EDS. When its visibility
// changes, the client that lost it sees it removed and the one that gained
// it gets it, and only clients that may see it hear of later changes.
func TestVisibilitySotW(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": limited(1, "ns", "ns-a"), "ns/b": dotted("b.ns", 1)})
	seer, blind := h.client(t), h.client(t)
	seer.node, blind.node = nsNode("seer", "ns-a"), nsNode("blind", "ns-x")
	ldsNames, edsNames := []string{"a.ns", "a.ns.svc", "b.ns"}, []string{"a.ns", "b.ns"}
	type got struct {
		lds, cds, eds *discoveryv3.DiscoveryResponse
	}
	start := func(c *client) got {
		var g got
		c.request(resourcev3.ListenerType, ldsNames, nil, "")
		g.lds = c.next()
		c.request(resourcev3.ClusterType, nil, nil, "") // wildcard
		g.cds = c.next()
		c.request(resourcev3.EndpointType, edsNames, nil, "")
		g.eds = c.next()
		c.request(resourcev3.ListenerType, ldsNames, g.lds, "")
		c.request(resourcev3.ClusterType, nil, g.cds, "")
		c.request(resourcev3.EndpointType, edsNames, g.eds, "")
		return g
	}
	check := func(who, what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %s = %v, want %v", who, what, got, want)
		}
	}
	s, b := start(seer), start(blind)
	check("ns-a", "LDS", listeners(t, s.lds), []string{"a.ns", "a.ns.svc", "b.ns"})
	check("ns-a", "wildcard CDS", names(t, s.cds), []string{"a.ns", "b.ns"})
	check("ns-a", "EDS", names(t, s.eds), []string{"a.ns", "b.ns"})
	check("ns-x", "LDS", listeners(t, b.lds), []string{"a.ns?", "a.ns.svc?", "b.ns"})
	check("ns-x", "wildcard CDS", names(t, b.cds), []string{"b.ns"})
	check("ns-x", "EDS", names(t, b.eds), []string{"b.ns"})

	// The annotation moves from ns-a to ns-x; nothing else changes.
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": limited(1, "ns", "ns-x")})
	check("ns-a after", "LDS", listeners(t, seer.next()), []string{"b.ns"})
	check("ns-a after", "wildcard CDS", names(t, seer.next()), []string{"b.ns"})
	check("ns-x after", "LDS", listeners(t, blind.next()), []string{"a.ns", "a.ns.svc", "b.ns"})
	check("ns-x after", "wildcard CDS", names(t, blind.next()), []string{"a.ns", "b.ns"})
	check("ns-x after", "EDS", names(t, blind.next()), []string{"a.ns"})

	// A change of both: ns-a hears only of b (its next response proves it
	// got nothing for a before), ns-x of both.
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": limited(5, "ns", "ns-x"), "ns/b": dotted("b.ns", 2)})
	check("ns-a later", "EDS", names(t, seer.next()), []string{"b.ns"})
	// ns-x hears of both, in one response or two (the protocol lets the
	// server split one cache update over several EDS responses).
	weights := map[string]uint32{}
	for len(weights) < 2 {
		r := blind.next() // fails the test if nothing comes within 10 s
		for i, n := range names(t, r) {
			if n != "a.ns" && n != "b.ns" {
				t.Fatalf("ns-x later: EDS carries %s", n)
			}
			weights[n] = weight(t, r, i)
		}
	}
	if weights["a.ns"] != 5 {
		t.Errorf("ns-x later: a has weight %d, want 5", weights["a.ns"])
	}
}

// The Service's own namespace always sees it, short names included; a
// client elsewhere gets unknown listeners for its alias and for a short
// name (which resolves in the client's own namespace).
func TestVisibilityOwnNamespaceAndShortNames(t *testing.T) {
	h := newHarness(t)
	canonical := "s.ns.svc.cluster.local:80"
	res := svc(canonical, 1)
	res.Aliases = map[string]string{"s.ns:80": canonical}
	res.Visibility = []string{"ns-a"} // the translator lists "ns" too; the rule does not need it
	apply(t, h.cache, true, map[string]*model.Resources{"ns/s": res})
	own, other := h.client(t), h.client(t)
	own.node, other.node = nsNode("own", "ns"), nsNode("other", "ns-x")
	want := []string{"s.ns:80"}
	own.request(resourcev3.ListenerType, []string{"s:80", "s.ns:80"}, nil, "")
	if got := listeners(t, own.next()); !slices.Equal(got, []string{"s.ns:80", "s:80"}) {
		t.Errorf("own namespace: LDS = %v, want %v and the short name", got, want)
	}
	other.request(resourcev3.ListenerType, []string{"s:80", "s.ns:80", canonical}, nil, "")
	if got := listeners(t, other.next()); !slices.Equal(got, []string{"s.ns.svc.cluster.local:80?", "s.ns:80?", "s:80?"}) {
		t.Errorf("other namespace: LDS = %v, want only unknown listeners", got)
	}
}

// Over delta: a name the client may not see is reported removed when
// asked for, left out of a wildcard, and removed or added when the
// visibility changes.
func TestVisibilityDelta(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": limited(1, "ns", "ns-a"), "ns/b": dotted("b.ns", 1)})
	seer, blind := h.deltaClient(t), h.deltaClient(t)
	seer.node, blind.node = nsNode("seer", "ns-a"), nsNode("blind", "ns-x")
	check := func(who string, r *discoveryv3.DeltaDiscoveryResponse, typeURL string, resources, removed []string) {
		t.Helper()
		if r.GetTypeUrl() != typeURL || !slices.Equal(deltaNames(r), resources) || !slices.Equal(r.GetRemovedResources(), removed) {
			t.Errorf("%s: %s resources %v removed %v, want %s resources %v removed %v", who,
				r.GetTypeUrl(), deltaNames(r), r.GetRemovedResources(), typeURL, resources, removed)
		}
	}
	for _, c := range []*deltaClient{seer, blind} {
		c.subscribe(resourcev3.ListenerType, "a.ns.svc", "b.ns")
		c.subscribe(resourcev3.ClusterType) // wildcard
	}
	check("ns-a", seer.next(), resourcev3.ListenerType, []string{"a.ns.svc", "b.ns"}, nil)
	check("ns-a", seer.next(), resourcev3.ClusterType, []string{"a.ns", "b.ns"}, nil)
	check("ns-x", blind.next(), resourcev3.ListenerType, []string{"b.ns"}, []string{"a.ns.svc"})
	check("ns-x", blind.next(), resourcev3.ClusterType, []string{"b.ns"}, nil)

	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": limited(1, "ns", "ns-x")})
	check("ns-a after", seer.next(), resourcev3.ListenerType, nil, []string{"a.ns.svc"})
	check("ns-a after", seer.next(), resourcev3.ClusterType, nil, []string{"a.ns"})
	check("ns-x after", blind.next(), resourcev3.ListenerType, []string{"a.ns.svc"}, nil)
	check("ns-x after", blind.next(), resourcev3.ClusterType, []string{"a.ns"}, nil)

	// Dropping the annotation makes it visible to everyone again.
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": dotted("a.ns", 1)})
	check("ns-a unlimited", seer.next(), resourcev3.ListenerType, []string{"a.ns.svc"}, nil)
	check("ns-a unlimited", seer.next(), resourcev3.ClusterType, []string{"a.ns"}, nil)
	if h.cache.anyLimited.Load() {
		t.Error("no Service is limited, but the cache still indexes limited names")
	}
}
