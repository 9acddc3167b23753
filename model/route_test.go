package model

import "testing"

func TestReferenceGrantAllows(t *testing.T) {
	g := &ReferenceGrant{
		Key:  GrantKey{Namespace: "to", Name: "g"},
		From: []GrantFrom{{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute", Namespace: "from"}},
		To:   []GrantTo{{Group: "", Kind: "Service", Name: "one"}},
	}
	for _, tc := range []struct {
		kind, ns, to string
		want         bool
	}{
		{"HTTPRoute", "from", "one", true},
		{"HTTPRoute", "from", "two", false},  // another name
		{"GRPCRoute", "from", "one", false},  // another kind
		{"HTTPRoute", "other", "one", false}, // another namespace
	} {
		if got := g.Allows("gateway.networking.k8s.io", tc.kind, tc.ns, "", "Service", tc.to); got != tc.want {
			t.Errorf("%s from %s to %s: %v, want %v", tc.kind, tc.ns, tc.to, got, tc.want)
		}
	}
	g.To[0].Name = ""
	if !g.Allows("gateway.networking.k8s.io", "HTTPRoute", "from", "", "Service", "any") {
		t.Error("a grant without a name must allow every Service")
	}
}

func TestParentAndBackendService(t *testing.T) {
	if k, ok := (ParentRef{Kind: "Service", Namespace: "n", Name: "s"}).Service(); !ok || k != (ServiceKey{Namespace: "n", Name: "s"}) {
		t.Errorf("Service parent: %v %v", k, ok)
	}
	if _, ok := (ParentRef{Group: "gateway.networking.k8s.io", Kind: "Gateway", Name: "g"}).Service(); ok {
		t.Error("a Gateway parent is not a Service")
	}
	if _, ok := (BackendRef{Group: "multicluster.x-k8s.io", Kind: "ServiceImport", Name: "s"}).Service(); ok {
		t.Error("a ServiceImport backend is not a Service")
	}
}
