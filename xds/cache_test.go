package xds

import (
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// ports builds the resources of a fake Service with one port per name: a
// listener, route, cluster and assignment of that name, the alias
// name+"-alias", a zone variant of the assignment and a class variant of
// the cluster. w sets the assignments' weight.
func ports(w uint32, names ...string) *model.Resources {
	res := &model.Resources{Aliases: map[string]string{}}
	for _, n := range names {
		cla := func() *endpointv3.ClusterLoadAssignment {
			return &endpointv3.ClusterLoadAssignment{
				ClusterName: n,
				Endpoints:   []*endpointv3.LocalityLbEndpoints{{LoadBalancingWeight: wrapperspb.UInt32(w)}},
			}
		}
		res.Listeners = append(res.Listeners, enc(&listenerv3.Listener{Name: n}))
		res.Routes = append(res.Routes, enc(&routev3.RouteConfiguration{Name: n}))
		res.Clusters = append(res.Clusters, enc(&clusterv3.Cluster{Name: n}))
		res.Assignments = append(res.Assignments, enc(cla()))
		res.Aliases[n+"-alias"] = n
		res.Variants = append(res.Variants,
			model.Variant{Type: model.Assignment, View: model.View{Zone: "z"}, Resource: enc(cla())},
			model.Variant{Type: model.Cluster, View: model.View{Class: model.ClassCCore}, Resource: enc(&clusterv3.Cluster{Name: n})})
	}
	return res
}

// contents lists what the cache holds, one line per resource, alias,
// memoized alias listener and variant, sorted.
func contents(c *Cache) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	for t := range numTypes {
		for name := range c.resources[t] {
			out = append(out, t.String()+" "+name)
		}
		for name, vs := range c.variants[t] {
			for key := range vs {
				out = append(out, t.String()+" "+name+" "+viewLabel(key))
			}
		}
	}
	for alias, canonical := range c.aliases {
		out = append(out, "alias "+alias+" -> "+canonical)
	}
	for canonical, byName := range c.aliasListeners {
		for name := range byName {
			out = append(out, "alias listener "+name+" -> "+canonical)
		}
	}
	slices.Sort(out)
	return out
}

// expect lists what ports(w, names...) puts in the cache, as contents does.
func expect(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, "lds "+n, "rds "+n, "cds "+n, "eds "+n,
			"eds "+n+" zone/z", "cds "+n+" class/"+model.ClassCCore,
			"alias "+n+"-alias -> "+n)
	}
	slices.Sort(out)
	return out
}

func applyN(t *testing.T, c *Cache, full bool, svcs map[string]*model.Resources) int {
	t.Helper()
	n, err := c.Apply(Update{Full: full, Services: svcs})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A change or removal of one Service removes exactly the names, aliases
// and variants it no longer has, and nothing of another Service's.
func TestReplaceGroupRemovesExactlyItsOwn(t *testing.T) {
	c := newTestCache()
	applyN(t, c, true, map[string]*model.Resources{
		"ns/a": ports(1, "a1", "a2"),
		"ns/b": ports(1, "b1"),
	})
	if d := cmp.Diff(expect("a1", "a2", "b1"), contents(c)); d != "" {
		t.Fatalf("after the first sync (-want +got):\n%s", d)
	}
	// A client asked for a2's alias: its memoized listener goes with a2.
	if c.getAlias("a2-alias", "a2-alias") == nil {
		t.Fatal("no alias listener for a2-alias")
	}

	// a loses port a2 and changes a1's weight; a1-alias moves to a3, a
	// new port that has no variants.
	a := ports(2, "a1")
	a.Listeners = append(a.Listeners, enc(&listenerv3.Listener{Name: "a3"}))
	a.Aliases["a1-alias"] = "a3"
	if n := applyN(t, c, false, map[string]*model.Resources{"ns/a": a}); n != 8 {
		// Changed, by type: lds a2, a2-alias, a1-alias and a3; rds a2;
		// cds a2; eds a1 (plain and variant: one name) and a2.
		t.Errorf("Apply = %d changed, want 8", n)
	}
	want := append(expect("b1"), "lds a1", "rds a1", "cds a1", "eds a1",
		"eds a1 zone/z", "cds a1 class/"+model.ClassCCore,
		"alias a1-alias -> a3", "lds a3")
	slices.Sort(want)
	if d := cmp.Diff(want, contents(c)); d != "" {
		t.Fatalf("after a changed (-want +got):\n%s", d)
	}

	// Removing a leaves b exactly as it was.
	if n := applyN(t, c, false, map[string]*model.Resources{"ns/a": nil}); n != 6 {
		t.Errorf("Apply = %d changed, want 6 (a1 of four types, a1-alias, a3)", n)
	}
	if d := cmp.Diff(expect("b1"), contents(c)); d != "" {
		t.Fatalf("after a went (-want +got):\n%s", d)
	}
	if _, ok := c.groups["ns/a"]; ok {
		t.Error("a's group outlived a")
	}

	// A full update without b empties the cache.
	applyN(t, c, true, map[string]*model.Resources{})
	if got := contents(c); len(got) != 0 || len(c.groups) != 0 {
		t.Fatalf("after an empty full update: %v, %d groups", got, len(c.groups))
	}
}

// A Service whose content is unchanged changes nothing, and a Service
// whose variants go keeps its plain resources.
func TestReplaceGroupUnchangedAndVariantsGone(t *testing.T) {
	c := newTestCache()
	applyN(t, c, true, map[string]*model.Resources{"ns/a": ports(1, "a1")})
	if n := applyN(t, c, false, map[string]*model.Resources{"ns/a": ports(1, "a1")}); n != 0 {
		t.Errorf("unchanged Service: Apply = %d changed, want 0", n)
	}
	plain := ports(1, "a1")
	plain.Variants = nil
	if n := applyN(t, c, false, map[string]*model.Resources{"ns/a": plain}); n != 2 {
		t.Errorf("variants gone: Apply = %d changed, want 2 (cds a1, eds a1)", n)
	}
	want := []string{"alias a1-alias -> a1", "cds a1", "eds a1", "lds a1", "rds a1"}
	if d := cmp.Diff(want, contents(c)); d != "" {
		t.Fatalf("after the variants went (-want +got):\n%s", d)
	}
	if g := c.groups["ns/a"]; g.variants != nil {
		t.Errorf("a group without variants keeps %v", *g.variants)
	}
}

// newTestCache returns a Cache that builds alias and unknown listeners with
// the translator's builders, as switchboard serve wires it.
func newTestCache() *Cache {
	return NewCache(CacheOptions{AliasListener: translator.AliasListener, UnknownListener: translator.UnknownListener})
}

// viewLabel names a view in contents: class/C, zone/Z, ns/N, joined by +.
func viewLabel(v model.View) string {
	var parts []string
	if v.Class != "" {
		parts = append(parts, "class/"+v.Class)
	}
	if v.Zone != "" {
		parts = append(parts, "zone/"+v.Zone)
	}
	if v.Namespace != "" {
		parts = append(parts, "ns/"+v.Namespace)
	}
	return strings.Join(parts, "+")
}
