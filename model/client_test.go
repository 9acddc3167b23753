package model

import "testing"

func TestClientClass(t *testing.T) {
	for ua, want := range map[string]string{
		"gRPC C-core":              ClassCCore,
		"gRPC C-core linux Python": ClassCCore, // Debian's python3-grpcio 1.51, measured
		"gRPC Go":                  "",
		"gRPC Node Pure JS":        "",
		"gRPC C-corexyz":           "",
		"envoy":                    ClassEnvoy, // what every Envoy build sends
		"Envoy":                    "",
		"":                         "",
	} {
		if got := ClientClass(ua); got != want {
			t.Errorf("ClientClass(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestResolve(t *testing.T) {
	c := Client{Class: ClassEnvoy, Zone: "zone-a", Namespace: "demo"}
	if got := c.Resolve("dns"); got != "dns" {
		t.Errorf("an Envoy client's Resolve(%q) = %q: Envoy's listener names are never short names", "dns", got)
	}
	c.Class = ""
	for name, want := range map[string]string{
		"greeter:50051":      "greeter.demo:50051",
		"greeter":            "greeter.demo",
		"greeter.other:80":   "greeter.other:80",
		"greeter.demo.svc":   "greeter.demo.svc",
		":80":                ":80",
		"xdstp://a/b/c:8080": "xdstp://a/b/c:8080",
	} {
		if got := c.Resolve(name); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", name, got, want)
		}
	}
	if got := (Client{}).Resolve("greeter:50051"); got != "greeter:50051" {
		t.Errorf("without a namespace Resolve = %q", got)
	}
}

func TestMaySee(t *testing.T) {
	limited := []string{"ns-a", "own"}
	for _, tc := range []struct {
		client    string
		visibleTo []string
		want      bool
	}{
		{"ns-x", nil, true},
		{"", nil, true},
		{"ns-a", limited, true},
		{"own", limited, true},
		{"own", []string{"ns-a"}, true}, // the own namespace always sees it
		{"ns-x", limited, false},
		{"", limited, false},
	} {
		if got := (Client{Namespace: tc.client}).MaySee(tc.visibleTo, "own"); got != tc.want {
			t.Errorf("Client{Namespace: %q}.MaySee(%q, own) = %v, want %v", tc.client, tc.visibleTo, got, tc.want)
		}
	}
}

// TestViews pins the order in which a client's variants are tried, per
// type: the most specific view first.
func TestViews(t *testing.T) {
	for _, tc := range []struct {
		client Client
		want   [NumResourceTypes][]View
	}{
		{Client{}, [NumResourceTypes][]View{}},
		{Client{Zone: "z"}, [NumResourceTypes][]View{Assignment: {{Zone: "z"}}}},
		{Client{Class: ClassCCore}, [NumResourceTypes][]View{Cluster: {{Class: ClassCCore}}, Assignment: {{Class: ClassCCore}}}},
		{Client{Class: ClassEnvoy, Zone: "z", Namespace: "n"}, [NumResourceTypes][]View{
			Listener:   {{Namespace: "n"}},
			Route:      {{Namespace: "n"}},
			Cluster:    {{Class: ClassEnvoy}},
			Assignment: {{Class: ClassEnvoy, Zone: "z"}, {Zone: "z"}, {Class: ClassEnvoy}},
		}},
	} {
		got := tc.client.Views()
		for typ := range NumResourceTypes {
			if len(got[typ]) != len(tc.want[typ]) {
				t.Errorf("%+v.Views()[%s] = %v, want %v", tc.client, typ, got[typ], tc.want[typ])
				continue
			}
			for i := range got[typ] {
				if got[typ][i] != tc.want[typ][i] {
					t.Errorf("%+v.Views()[%s] = %v, want %v", tc.client, typ, got[typ], tc.want[typ])
				}
			}
		}
	}
}

// TestInScope: a wildcard brings an Envoy client the sidecar stage's
// resources and no api_listener; every other client everything else.
func TestInScope(t *testing.T) {
	envoy, grpc := Client{Class: ClassEnvoy}, Client{}
	for _, tc := range []struct {
		c         Client
		typ       ResourceType
		envoyOnly bool
		want      bool
	}{
		{envoy, Listener, true, true},
		{envoy, Listener, false, false},
		{envoy, Cluster, false, true},
		{envoy, Cluster, true, true},
		{grpc, Listener, true, false},
		{grpc, Cluster, true, false},
		{grpc, Listener, false, true},
		{grpc, Assignment, false, true},
	} {
		if got := tc.c.InScope(tc.typ, tc.envoyOnly); got != tc.want {
			t.Errorf("%+v.InScope(%s, envoyOnly=%v) = %v, want %v", tc.c, tc.typ, tc.envoyOnly, got, tc.want)
		}
	}
}

func TestContentVersion(t *testing.T) {
	a, b := NewEncoded("x", []byte("one")), NewEncoded("y", []byte("one"))
	if a.Version != b.Version || a.Version == 0 {
		t.Errorf("equal bytes: versions %d and %d", a.Version, b.Version)
	}
	if c := NewEncoded("x", []byte("two")); c.Version == a.Version {
		t.Errorf("different bytes, same version %d", c.Version)
	}
	if ContentVersion(nil) == 0 {
		t.Error("the version of no bytes is 0")
	}
}
