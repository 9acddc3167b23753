package pipeline

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

func sidecarView(ns, name string, ip string, port int32, portName string, addrs ...string) *model.Service {
	svc := &model.Service{Key: model.ServiceKey{Namespace: ns, Name: name}, ClusterIPs: []string{ip}, SliceCount: 1}
	p := model.Port{Name: portName, Port: port, Protocol: "TCP"}
	for _, a := range addrs {
		p.Endpoints = append(p.Endpoints, model.Endpoint{Addresses: []string{a}, Port: port, Ready: true, Serving: true})
	}
	svc.Ports = []model.Port{p}
	return svc
}

func groupKeys(m map[string]*model.Resources) []string {
	return slices.Sorted(maps.Keys(m))
}

// The sidecar stage rebuilds exactly the parts a change touches: nothing
// for an endpoint change of a Service with a ClusterIP, the Service's
// ports and the DNS table for a new Service, a removal for a port nobody
// uses any more; a full batch rebuilds everything and drops what is gone.
func TestSidecarsRebuildOnlyWhatChanged(t *testing.T) {
	s := NewSidecars(translator.Options{SidecarDNS: "127.0.0.1:15053"})
	web := sidecarView("a", "web", "10.96.0.1", 80, "http", "10.0.0.1")
	db := sidecarView("a", "db", "10.96.0.2", 5432, "pg", "10.0.0.2")
	full := model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{web.Key: web, db.Key: db}}
	groups, _, err := s.Apply(full)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"~sidecar/dns", "~sidecar/shared", "~sidecar/tcp/5432", "~sidecar/tcp/80"}
	if got := groupKeys(groups); !slices.Equal(got, want) {
		t.Fatalf("full batch groups = %v, want %v", got, want)
	}
	if r := groups["~sidecar/tcp/80"]; r == nil || len(r.Routes) != 1 || len(r.Listeners) != 1 || !r.EnvoyOnly {
		t.Fatalf("tcp/80 = %+v, want one listener and one route, Envoy only", r)
	}

	// An endpoint change: nothing of the sidecar stage changes.
	moved := sidecarView("a", "web", "10.96.0.1", 80, "http", "10.0.0.9")
	at := time.Unix(100, 0)
	groups, _, err = s.Apply(model.Batch{Services: map[model.ServiceKey]*model.Service{web.Key: moved}, Changed: map[model.ServiceKey]time.Time{web.Key: at}})
	if err != nil || len(groups) != 0 {
		t.Fatalf("endpoint change rebuilt %v (err %v), want nothing", groupKeys(groups), err)
	}

	// A new Service on port 80: its port and the DNS table, with its time.
	api := sidecarView("b", "api", "10.96.0.3", 80, "http", "10.0.0.3")
	groups, changed, err := s.Apply(model.Batch{Services: map[model.ServiceKey]*model.Service{api.Key: api}, Changed: map[model.ServiceKey]time.Time{api.Key: at}})
	if err != nil {
		t.Fatal(err)
	}
	if got := groupKeys(groups); !slices.Equal(got, []string{"~sidecar/dns", "~sidecar/tcp/80"}) {
		t.Fatalf("new Service rebuilt %v, want its port and the DNS table", got)
	}
	if !changed["~sidecar/tcp/80"].Equal(at) {
		t.Errorf("changed[tcp/80] = %v, want %v", changed["~sidecar/tcp/80"], at)
	}
	// Two namespaces have Services on port 80: each gets its short names.
	if ns := namespacesOf(groups["~sidecar/tcp/80"].Variants, model.Route); !slices.Equal(ns, []string{"a", "b"}) {
		t.Errorf("route variants for %v, want [a b]", ns)
	}

	// The last Service of port 5432 goes: its group is removed.
	groups, _, err = s.Apply(model.Batch{Services: map[model.ServiceKey]*model.Service{db.Key: nil}})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := groups["~sidecar/tcp/5432"]; !ok || r != nil {
		t.Fatalf("after deleting db, tcp/5432 = %v (present %v), want a removal", r, ok)
	}

	// A full batch without api: port 80 is rebuilt without it.
	groups, _, err = s.Apply(model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{web.Key: moved}})
	if err != nil {
		t.Fatal(err)
	}
	if got := groupKeys(groups); !slices.Equal(got, []string{"~sidecar/dns", "~sidecar/shared", "~sidecar/tcp/80"}) {
		t.Fatalf("second full batch groups = %v", got)
	}
	if ns := namespacesOf(groups["~sidecar/tcp/80"].Variants, model.Route); !slices.Equal(ns, []string{"a"}) {
		t.Errorf("after api left, route variants for %v, want [a]", ns)
	}
}

// A headless Service's pods are in its chains and DNS records, so an
// endpoint change of it does rebuild its parts.
func TestSidecarsFollowHeadlessEndpoints(t *testing.T) {
	s := NewSidecars(translator.Options{SidecarDNS: "127.0.0.1:15053"})
	kafka := sidecarView("a", "kafka", "", 9092, "broker", "10.0.1.1")
	kafka.ClusterIPs, kafka.Headless = nil, true
	if _, _, err := s.Apply(model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{kafka.Key: kafka}}); err != nil {
		t.Fatal(err)
	}
	moved := sidecarView("a", "kafka", "", 9092, "broker", "10.0.1.2")
	moved.ClusterIPs, moved.Headless = nil, true
	groups, _, err := s.Apply(model.Batch{Services: map[model.ServiceKey]*model.Service{kafka.Key: moved}})
	if err != nil {
		t.Fatal(err)
	}
	if got := groupKeys(groups); !slices.Contains(got, "~sidecar/dns") {
		t.Fatalf("headless endpoint change rebuilt %v, want the DNS table among them", got)
	}
}

func namespacesOf(vs []model.Variant, t model.ResourceType) []string {
	var out []string
	for _, v := range vs {
		if v.Type == t {
			out = append(out, v.View.Namespace)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
