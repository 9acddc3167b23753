package watcher

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchboard-xds/switchboard/model"
)

const (
	v4 = discoveryv1.AddressTypeIPv4
	v6 = discoveryv1.AddressTypeIPv6
)

// step is one mutation and whether it must report a changed view.
type step struct {
	name string
	do   func(*Store) bool
	want bool
}

func upSvc(svc *corev1.Service, want bool) step {
	return step{"upsert service " + svc.Name, func(s *Store) bool { return s.UpsertService(svc) }, want}
}

func upSlice(es *discoveryv1.EndpointSlice, want bool) step {
	return step{"upsert slice " + es.Name, func(s *Store) bool { return s.UpsertSlice(es) }, want}
}

func delSvc(ns, name string, want bool) step {
	return step{"delete service " + name, func(s *Store) bool { return s.DeleteService(ns, name) }, want}
}

func delSlice(ns, name string, want bool) step {
	return step{"delete slice " + name, func(s *Store) bool { return s.DeleteSlice(ns, name) }, want}
}

func withMeta(svc *corev1.Service, f func(*corev1.Service)) *corev1.Service {
	f(svc)
	return svc
}

func TestStore(t *testing.T) {
	web := func() *corev1.Service { return newSvc("ns", "web", svcPortNum("http", 80, 8080)) }
	webView := func(sliceCount int, eps ...model.Endpoint) *model.Service {
		return &model.Service{
			Key: key("ns", "web"), Type: model.TypeClusterIP, SliceCount: sliceCount,
			Ports: []model.Port{tcp("http", 80, 8080, eps...)},
		}
	}
	httpPort := slicePorts("http", 8080)

	tests := []struct {
		name  string
		opts  Options
		steps []step
		want  map[model.ServiceKey]*model.Service
	}{
		{
			name:  "service without slices",
			steps: []step{upSvc(web(), true), upSvc(web(), false)},
			want:  map[model.ServiceKey]*model.Service{key("ns", "web"): webView(0)},
		},
		{
			name: "fields the view does not keep report no change",
			steps: []step{
				upSvc(web(), true),
				upSvc(withMeta(web(), func(s *corev1.Service) {
					s.ResourceVersion = "42"
					s.Labels = map[string]string{"team": "a"}
					s.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}
					s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
					s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
				}), false),
				upSlice(newSlice("ns", "web-1", "web", v4, httpPort, newEp("10.0.0.1")), true),
				upSlice(withSliceMeta(newSlice("ns", "web-1", "web", v4, httpPort, newEp("10.0.0.1")), func(es *discoveryv1.EndpointSlice) {
					es.ResourceVersion = "7"
					es.Labels["endpointslice.kubernetes.io/managed-by"] = "x"
					es.Annotations = map[string]string{"a": "b"}
				}), false),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): webView(1, readyEp(8080, "10.0.0.1"))},
		},
		{
			name: "cluster IPs are kept, valid ones only, spec.clusterIP when clusterIPs is empty",
			steps: []step{
				upSvc(web(), true),
				upSvc(withMeta(web(), func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.10" }), true),
				upSvc(withMeta(web(), func(s *corev1.Service) {
					s.Spec.ClusterIP = "10.96.0.10"
					s.Spec.ClusterIPs = []string{"10.96.0.10", "bogus", "fd00::0a"}
				}), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): func() *model.Service {
				v := webView(0)
				v.ClusterIPs = []string{"10.96.0.10", "fd00::a"}
				return v
			}()},
		},
		{
			name: "switchboard annotations are kept",
			steps: []step{
				upSvc(web(), true),
				upSvc(withMeta(web(), func(s *corev1.Service) {
					s.Annotations = map[string]string{"switchboard.io/lb-policy": "ring_hash", "other": "x"}
				}), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): func() *model.Service {
				v := webView(0)
				v.Annotations = map[string]string{"switchboard.io/lb-policy": "ring_hash"}
				return v
			}()},
		},
		{
			name: "slices before the service are published with it",
			steps: []step{
				upSlice(newSlice("ns", "web-1", "web", v4, httpPort, newEp("10.0.0.2"), newEp("10.0.0.1")), false),
				upSlice(newSlice("ns", "web-2", "web", v4, httpPort, newEp("10.0.0.10")), false),
				upSvc(web(), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): webView(2,
				readyEp(8080, "10.0.0.1"), readyEp(8080, "10.0.0.2"), readyEp(8080, "10.0.0.10"))},
		},
		{
			name: "conditions default as discovery/v1 documents",
			steps: []step{
				upSvc(web(), true),
				upSlice(newSlice("ns", "web-1", "web", v4, httpPort,
					newEp("10.0.0.1"),
					newEp("10.0.0.2", ready(false)),
					newEp("10.0.0.3", ready(false), serving(true), terminating(true)),
					newEp("10.0.0.4", ready(true), serving(false)),
				), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): webView(1,
				model.Endpoint{Addresses: []string{"10.0.0.1"}, Port: 8080, Ready: true, Serving: true},
				model.Endpoint{Addresses: []string{"10.0.0.2"}, Port: 8080},
				model.Endpoint{Addresses: []string{"10.0.0.3"}, Port: 8080, Serving: true, Terminating: true},
				model.Endpoint{Addresses: []string{"10.0.0.4"}, Port: 8080, Ready: true},
			)},
		},
		{
			name: "named target port resolves per slice",
			steps: []step{
				upSvc(newSvc("ns", "web", svcPortNamed("http", 80, "web"), svcPortNum("admin", 9000, 9000)), true),
				upSlice(newSlice("ns", "web-a", "web", v4, slicePorts("http", 8080, "admin", 9000), newEp("10.0.0.1")), true),
				upSlice(newSlice("ns", "web-b", "web", v4, slicePorts("http", 9090), newEp("10.0.0.2")), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): {
				Key: key("ns", "web"), Type: model.TypeClusterIP, SliceCount: 2,
				Ports: []model.Port{
					{Name: "http", Port: 80, Protocol: "TCP", TargetPortName: "web", Endpoints: []model.Endpoint{
						readyEp(8080, "10.0.0.1"), readyEp(9090, "10.0.0.2"),
					}},
					tcp("admin", 9000, 9000, readyEp(9000, "10.0.0.1")),
				},
			}},
		},
		{
			name: "port no slice carries is unresolved",
			steps: []step{
				upSvc(newSvc("ns", "web", svcPortNum("grpc", 50051, 50051)), true),
				upSlice(newSlice("ns", "web-1", "web", v4, slicePorts("http", 8080), newEp("10.0.0.1")), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): {
				Key: key("ns", "web"), Type: model.TypeClusterIP, SliceCount: 1,
				Ports: []model.Port{{Name: "grpc", Port: 50051, Protocol: "TCP", TargetPort: 50051, Unresolved: true}},
			}},
		},
		{
			name: "dual-stack slices merge per target",
			steps: []step{
				upSvc(web(), true),
				upSlice(newSlice("ns", "web-v6", "web", v6, httpPort,
					newEp("fd00::1", pod("a")), newEp("fd00::2", pod("b")), newEp("fd00::3")), true),
				upSlice(newSlice("ns", "web-v4", "web", v4, httpPort,
					newEp("10.0.0.1", pod("a"), zone("z1")), newEp("10.0.0.3")), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): webView(2,
				model.Endpoint{Addresses: []string{"10.0.0.1", "fd00::1"}, Port: 8080, Ready: true, Serving: true, Zone: "z1"},
				readyEp(8080, "10.0.0.3"),
				readyEp(8080, "fd00::2"),
				readyEp(8080, "fd00::3"),
			)},
		},
		{
			name: "dual-stack merge takes the cautious condition",
			steps: []step{
				upSvc(web(), true),
				upSlice(newSlice("ns", "web-v4", "web", v4, httpPort, newEp("10.0.0.1", pod("a"))), true),
				upSlice(newSlice("ns", "web-v6", "web", v6, httpPort, newEp("fd00::1", pod("a"), ready(false))), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): webView(2,
				model.Endpoint{Addresses: []string{"10.0.0.1", "fd00::1"}, Port: 8080})},
		},
		{
			name: "duplicates across slices keep the ready copy",
			steps: []step{
				upSvc(web(), true),
				upSlice(newSlice("ns", "web-1", "web", v4, httpPort, newEp("10.0.0.1", ready(false)), newEp("10.0.0.1", ready(false))), true),
				upSlice(newSlice("ns", "web-2", "web", v4, httpPort, newEp("10.0.0.1")), true),
				// The same address on another port is another endpoint.
				upSlice(newSlice("ns", "web-3", "web", v4, slicePorts("http", 8081), newEp("10.0.0.1")), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): webView(3,
				readyEp(8080, "10.0.0.1"), readyEp(8081, "10.0.0.1"))},
		},
		{
			name: "endpoint order within a slice does not matter",
			steps: []step{
				upSvc(web(), true),
				upSlice(newSlice("ns", "web-1", "web", v4, httpPort, newEp("10.0.0.1"), newEp("10.0.0.2")), true),
				upSlice(newSlice("ns", "web-1", "web", v4, httpPort, newEp("10.0.0.2"), newEp("10.0.0.1")), false),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): webView(1, readyEp(8080, "10.0.0.1"), readyEp(8080, "10.0.0.2"))},
		},
		{
			name: "slices without the service label, FQDN slices and bad addresses are ignored",
			steps: []step{
				upSvc(web(), true),
				upSlice(newSlice("ns", "orphan", "", v4, httpPort, newEp("10.0.0.9")), false),
				upSlice(newSlice("ns", "fqdn", "web", discoveryv1.AddressTypeFQDN, httpPort, newEp("example.com")), false),
				upSlice(newSlice("ns", "web-1", "web", v4, httpPort, newEp("10.0.0.1"), newEp("fd00::1"), newEp("bogus")), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): webView(1, readyEp(8080, "10.0.0.1"))},
		},
		{
			name: "deletes",
			steps: []step{
				upSvc(web(), true),
				upSlice(newSlice("ns", "web-1", "web", v4, httpPort, newEp("10.0.0.1")), true),
				delSlice("ns", "web-1", true),
				delSlice("ns", "web-1", false),
				upSlice(newSlice("ns", "web-1", "web", v4, httpPort, newEp("10.0.0.1")), true),
				delSvc("ns", "web", true),
				delSvc("ns", "web", false),
				// The slice was kept: the Service comes back with it.
				upSvc(web(), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): webView(1, readyEp(8080, "10.0.0.1"))},
		},
		{
			name: "a slice moved to another service changes both",
			steps: []step{
				upSvc(web(), true),
				upSvc(newSvc("ns", "api", svcPortNum("http", 80, 8080)), true),
				upSlice(newSlice("ns", "s1", "web", v4, httpPort, newEp("10.0.0.1")), true),
				upSlice(newSlice("ns", "s1", "api", v4, httpPort, newEp("10.0.0.1")), true),
			},
			want: map[model.ServiceKey]*model.Service{
				key("ns", "web"): webView(0),
				key("ns", "api"): {
					Key: key("ns", "api"), Type: model.TypeClusterIP, SliceCount: 1,
					Ports: []model.Port{tcp("http", 80, 8080, readyEp(8080, "10.0.0.1"))},
				},
			},
		},
		{
			name: "ports, hints and defaults are normalised",
			steps: []step{
				upSvc(&corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
					Spec: corev1.ServiceSpec{
						ClusterIP: corev1.ClusterIPNone, TrafficDistribution: ptr("PreferClose"),
						Ports: []corev1.ServicePort{
							{Name: "dns-udp", Port: 53, Protocol: corev1.ProtocolUDP},
							{Name: "http", Port: 80, AppProtocol: ptr("kubernetes.io/h2c")},
							{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
						},
					},
				}, true),
				upSlice(newSlice("ns", "web-1", "web", v4, slicePorts("http", 80),
					newEp("10.0.0.1", zone("b", "c", "a", "c"), func(e *discoveryv1.Endpoint) {
						e.NodeName, e.Hostname = ptr("n1"), ptr("h1")
					})), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): {
				Key: key("ns", "web"), Type: model.TypeClusterIP, Headless: true, TrafficDistribution: "PreferClose", SliceCount: 1,
				Ports: []model.Port{
					{Name: "dns-tcp", Port: 53, Protocol: "TCP", TargetPort: 53, Unresolved: true},
					{Name: "dns-udp", Port: 53, Protocol: "UDP", TargetPort: 53, Unresolved: true},
					{Name: "http", Port: 80, Protocol: "TCP", AppProtocol: "kubernetes.io/h2c", TargetPort: 80, Endpoints: []model.Endpoint{{
						Addresses: []string{"10.0.0.1"}, Port: 80, Ready: true, Serving: true,
						Zone: "b", NodeName: "n1", Hostname: "h1", ForZones: []string{"a", "c"},
					}}},
				},
			}},
		},
		{
			name: "namespace filter",
			opts: Options{Namespaces: []string{"ns"}},
			steps: []step{
				upSvc(newSvc("other", "web", svcPortNum("http", 80, 8080)), false),
				upSlice(newSlice("other", "web-1", "web", v4, httpPort, newEp("10.0.0.1")), false),
				upSvc(web(), true),
			},
			want: map[model.ServiceKey]*model.Service{key("ns", "web"): webView(0)},
		},
		{
			name: "selector filter removes a service that stops matching",
			opts: Options{Selector: "expose=yes"},
			steps: []step{
				upSlice(newSlice("ns", "web-1", "web", v4, httpPort, newEp("10.0.0.1")), false),
				upSvc(web(), false),
				upSvc(withMeta(web(), func(s *corev1.Service) { s.Labels = map[string]string{"expose": "yes"} }), true),
				upSvc(withMeta(web(), func(s *corev1.Service) { s.Labels = map[string]string{"expose": "no"} }), true),
				upSvc(withMeta(web(), func(s *corev1.Service) { s.Labels = map[string]string{"expose": "no"} }), false),
			},
			want: map[model.ServiceKey]*model.Service{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewStore(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range tc.steps {
				if got := st.do(s); got != st.want {
					t.Errorf("step %d (%s): changed = %v, want %v", i, st.name, got, st.want)
				}
			}
			got := s.TakeAll()
			assertView(t, "views", got, tc.want)
			if s.Len() != len(tc.want) {
				t.Errorf("Len() = %d, want %d", s.Len(), len(tc.want))
			}
		})
	}
}

func withSliceMeta(es *discoveryv1.EndpointSlice, f func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
	f(es)
	return es
}

func TestStoreTakeChanges(t *testing.T) {
	s, err := NewStore(Options{})
	if err != nil {
		t.Fatal(err)
	}
	httpPort := slicePorts("http", 8080)
	s.UpsertService(newSvc("ns", "a", svcPortNum("http", 80, 8080)))
	s.UpsertService(newSvc("ns", "b", svcPortNum("http", 80, 8080)))
	if got := s.TakeAll(); len(got) != 2 {
		t.Fatalf("TakeAll: %d services, want 2", len(got))
	}
	if s.Dirty() {
		t.Fatal("dirty after TakeAll")
	}

	// Only the Service that changed is handed out.
	s.UpsertSlice(newSlice("ns", "a-1", "a", v4, httpPort, newEp("10.0.0.1")))
	got := s.TakeChanges()
	if len(got) != 1 || got[key("ns", "a")] == nil {
		t.Fatalf("TakeChanges = %v, want only ns/a", got)
	}
	before := got[key("ns", "a")]

	// A change undone before the next batch is not handed out.
	s.UpsertSlice(newSlice("ns", "a-1", "a", v4, httpPort, newEp("10.0.0.2")))
	s.UpsertSlice(newSlice("ns", "a-1", "a", v4, httpPort, newEp("10.0.0.1")))
	if !s.Dirty() {
		t.Fatal("not dirty after changes")
	}
	if got := s.TakeChanges(); len(got) != 0 {
		t.Fatalf("TakeChanges after undo = %v, want none", got)
	}

	// Deleted Services come out as nil; published views are never mutated.
	s.DeleteService("ns", "b")
	s.UpsertSlice(newSlice("ns", "a-1", "a", v4, httpPort, newEp("10.0.0.3")))
	got = s.TakeChanges()
	if v, ok := got[key("ns", "b")]; !ok || v != nil {
		t.Errorf("deleted service: got %v (present %v), want nil entry", v, ok)
	}
	if ep := before.Ports[0].Endpoints[0].Addresses[0]; ep != "10.0.0.1" {
		t.Errorf("a published view was mutated: first address now %s", ep)
	}
	if ep := got[key("ns", "a")].Ports[0].Endpoints[0].Addresses[0]; ep != "10.0.0.3" {
		t.Errorf("new view has %s, want 10.0.0.3", ep)
	}
}

func TestNewStoreBadSelector(t *testing.T) {
	if _, err := NewStore(Options{Selector: "a in (b"}); err == nil {
		t.Fatal("want an error for a malformed selector")
	}
}
