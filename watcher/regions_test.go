package watcher

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func onNodeName(n string) func(*discoveryv1.Endpoint) {
	return func(e *discoveryv1.Endpoint) { e.NodeName = &n }
}

func node(name, region string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if region != "" {
		n.Labels = map[string]string{RegionLabel: region, "other": "x"}
	}
	return n
}

func TestStoreNodeRegions(t *testing.T) {
	s, err := NewStore(Options{NodeRegions: true})
	if err != nil {
		t.Fatal(err)
	}
	s.UpsertService(newSvc("ns", "a", svcPortNum("http", 80, 8080)))
	s.UpsertService(newSvc("ns", "b", svcPortNum("http", 80, 8080)))
	s.UpsertSlice(newSlice("ns", "a-1", "a", v4, slicePorts("http", 8080), newEp("10.0.0.1", onNodeName("n1"))))
	s.UpsertSlice(newSlice("ns", "b-1", "b", v4, slicePorts("http", 8080), newEp("10.0.0.2", onNodeName("n2"))))
	s.TakeAll()

	region := func(svc string) string { return s.Service(key("ns", svc)).Ports[0].Endpoints[0].Region }
	if !s.UpsertNode(node("n1", "eu-west")) {
		t.Fatal("a region for a Node with endpoints changed nothing")
	}
	if got := s.TakeChanges(); len(got) != 1 || got[key("ns", "a")] == nil {
		t.Fatalf("changes = %v, want only ns/a (its endpoint is on n1)", got)
	}
	if region("a") != "eu-west" || region("b") != "" {
		t.Fatalf("regions a=%q b=%q", region("a"), region("b"))
	}
	if s.UpsertNode(node("n1", "eu-west")) {
		t.Fatal("the same region again reported a change")
	}
	if s.UpsertNode(node("n3", "us-east")) {
		t.Fatal("a Node without endpoints changed a view")
	}
	if !s.DeleteNode("n1") || region("a") != "" {
		t.Fatalf("deleting the Node left region %q", region("a"))
	}
}

func TestStripNodeKeepsOnlyRegion(t *testing.T) {
	n := node("n1", "eu-west")
	n.Status.Images = []corev1.ContainerImage{{Names: []string{"big"}}}
	out, err := stripObject(n)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Node)
	if len(got.Labels) != 1 || got.Labels[RegionLabel] != "eu-west" || len(got.Status.Images) != 0 {
		t.Fatalf("stripped node = %+v", got)
	}
}
