package translator

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-xds/switchboard/model"
)

// TestShortNamesMatchVirtualHost checks that a client in the Service's
// namespace dialling "S:P" (or "S" for a single-port Service) is matched by
// the canonical route's virtual host the way grpc-go matches it, and that
// the short names stay out of model.Resources.Aliases (which must be
// namespace-qualified).
func TestShortNamesMatchVirtualHost(t *testing.T) {
	key := model.ServiceKey{Namespace: "n", Name: "s"}
	for _, tc := range []struct {
		name    string
		ports   []model.Port
		match   map[string]string // dialled short name -> canonical route
		noMatch []string
	}{
		{
			"single",
			[]model.Port{{Name: "a", Port: 80}},
			map[string]string{"s:80": "s.n.svc.cluster.local:80", "s": "s.n.svc.cluster.local:80"},
			[]string{"s:81", "t:80"},
		},
		{
			"multi",
			[]model.Port{{Name: "a", Port: 80}, {Name: "b", Port: 81}},
			map[string]string{"s:80": "s.n.svc.cluster.local:80", "s:81": "s.n.svc.cluster.local:81"},
			[]string{"s"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, diags := translate(t, Options{}, &model.Service{Key: key, Ports: tc.ports, SliceCount: 1})
			if len(diags) != 0 {
				t.Fatalf("diagnostics: %v", diags)
			}
			for short, canonical := range tc.match {
				if _, ok := res.Aliases[short]; ok {
					t.Errorf("short name %q is in Aliases", short)
				}
				for _, rc := range res.Routes {
					vh := findBestMatchingVirtualHost(short, rc.GetVirtualHosts())
					if (vh != nil) != (rc.GetName() == canonical) {
						t.Errorf("route %q: %q matched %v, want a match only on %q", rc.GetName(), short, vh != nil, canonical)
					}
				}
			}
			for _, name := range tc.noMatch {
				for _, rc := range res.Routes {
					if vh := findBestMatchingVirtualHost(name, rc.GetVirtualHosts()); vh != nil {
						t.Errorf("route %q matches %q", rc.GetName(), name)
					}
				}
			}
		})
	}
}

// TestPortNames checks the names cut from shared strings against the plain
// concatenations they stand for.
func TestPortNames(t *testing.T) {
	for _, tc := range []struct {
		domain string
		key    model.ServiceKey
		port   int32
	}{
		{"cluster.local", model.ServiceKey{Namespace: "n", Name: "s"}, 80},
		{"example.com", model.ServiceKey{Namespace: "demo", Name: "greeter"}, 50051},
		{"a-b.c", model.ServiceKey{Namespace: "x-1", Name: "y2"}, 1},
	} {
		for _, single := range []bool{true, false} {
			var buf [7]string
			canonical, aliases, short := portNames(&buf, tc.domain, tc.key, tc.port, single)
			if want := CanonicalName(tc.domain, tc.key, tc.port); canonical != want {
				t.Errorf("canonical %q, want %q", canonical, want)
			}
			s, n, p := tc.key.Name, tc.key.Namespace, ":"+strconv.Itoa(int(tc.port))
			wantAliases := []string{s + "." + n + p, s + "." + n + ".svc" + p}
			wantShort := []string{s + p}
			if single {
				wantAliases = append(wantAliases, s+"."+n, s+"."+n+".svc", s+"."+n+".svc."+tc.domain)
				wantShort = append(wantShort, s)
			}
			slices.Sort(wantAliases)
			slices.Sort(wantShort)
			if !slices.Equal(aliases, wantAliases) || !slices.Equal(slices.Sorted(slices.Values(short)), wantShort) {
				t.Errorf("%v %d single=%v: aliases %q short %q, want %q and %q", tc.key, tc.port, single, aliases, short, wantAliases, wantShort)
			}
		}
	}
}

// TestValidNames pins the Kubernetes rules that validKey and
// Options.Validate apply (apimachinery's validation).
func TestValidNames(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		key  model.ServiceKey
		want bool
	}{
		{model.ServiceKey{Namespace: "n", Name: "s"}, true},
		{model.ServiceKey{Namespace: "1-ns", Name: "s-1"}, true},
		{model.ServiceKey{Namespace: long, Name: long}, true},
		{model.ServiceKey{Namespace: long + "a", Name: "s"}, false},
		{model.ServiceKey{Namespace: "n", Name: "1s"}, false}, // DNS-1035: starts with a letter
		{model.ServiceKey{Namespace: "n", Name: "s-"}, false},
		{model.ServiceKey{Namespace: "-n", Name: "s"}, false},
		{model.ServiceKey{Namespace: "n", Name: "s.t"}, false},
		{model.ServiceKey{Namespace: "N", Name: "s"}, false},
		{model.ServiceKey{Namespace: "", Name: "s"}, false},
		{model.ServiceKey{Namespace: "n", Name: ""}, false},
	} {
		if got := validKey(tc.key); got != tc.want {
			t.Errorf("validKey(%v) = %v, want %v", tc.key, got, tc.want)
		}
	}
	for domain, want := range map[string]bool{
		"": true, "cluster.local": true, "a-b.c": true, "x": true,
		"cluster.local.": false, ".local": false, "Cluster.local": false, "a..b": false, "a_b.c": false,
		strings.Repeat("a.", 126) + "a": true, strings.Repeat("a.", 127) + "a": false,
	} {
		if err := (Options{ClusterDomain: domain}).Validate(); (err == nil) != want {
			t.Errorf("Validate(%q) = %v, want valid %v", domain, err, want)
		}
	}
}

// BenchmarkValidKey is the per-Service cost of the name checks that every
// translation of a Service makes (Options.Validate and validKey).
func BenchmarkValidKey(b *testing.B) {
	opts := Options{ClusterDomain: DefaultClusterDomain}
	key := model.ServiceKey{Namespace: "ns-42", Name: "svc-4242"}
	b.ReportAllocs()
	for b.Loop() {
		if opts.Validate() != nil || !validKey(key) {
			b.Fatal("valid names rejected")
		}
	}
}
