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
		{Client{Namespace: "n"}, [NumResourceTypes][]View{Route: {{Namespace: "n"}}}},
		{Client{Class: ClassEnvoy}, [NumResourceTypes][]View{Route: {{Class: ClassEnvoy}}, Cluster: {{Class: ClassEnvoy}}, Assignment: {{Class: ClassEnvoy}}}},
		{Client{Class: ClassEnvoy, Zone: "z", Namespace: "n"}, [NumResourceTypes][]View{
			Route:      {{Class: ClassEnvoy, Namespace: "n"}, {Class: ClassEnvoy}},
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

// TestEqual: every field of a view takes part in the one view equality.
func TestEqual(t *testing.T) {
	base := func() *Service {
		return &Service{
			Key: ServiceKey{Namespace: "n", Name: "s"}, Type: TypeClusterIP, ClusterIPs: []string{"10.0.0.1"},
			Annotations: map[string]string{"switchboard.io/x": "y"}, SliceCount: 1,
			Ports: []Port{{Name: "p", Port: 80, Endpoints: []Endpoint{{Addresses: []string{"10.1.0.1"}, Port: 8080, Ready: true, ForZones: []string{"z"}}}}},
		}
	}
	if !Equal(base(), base()) || !Equal(nil, nil) || Equal(base(), nil) {
		t.Fatal("Equal of equal views (or of nils) is wrong")
	}
	for name, change := range map[string]func(*Service){
		"key":          func(s *Service) { s.Key.Name = "t" },
		"type":         func(s *Service) { s.Type = TypeNodePort },
		"headless":     func(s *Service) { s.Headless = true },
		"cluster IPs":  func(s *Service) { s.ClusterIPs = []string{"10.0.0.2"} },
		"external":     func(s *Service) { s.ExternalName = "x.example" },
		"distribution": func(s *Service) { s.TrafficDistribution = "PreferClose" },
		"annotations":  func(s *Service) { s.Annotations["switchboard.io/x"] = "z" },
		"slice count":  func(s *Service) { s.SliceCount = 2 },
		"port":         func(s *Service) { s.Ports[0].Port = 81 },
		"unresolved":   func(s *Service) { s.Ports[0].Unresolved = true },
		"endpoint":     func(s *Service) { s.Ports[0].Endpoints[0].Ready = false },
		"hints":        func(s *Service) { s.Ports[0].Endpoints[0].ForZones = nil },
		"region":       func(s *Service) { s.Ports[0].Endpoints[0].Region = "r" },
	} {
		s := base()
		change(s)
		if Equal(base(), s) {
			t.Errorf("a change of %s is not seen by Equal", name)
		}
	}
}
