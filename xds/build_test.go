package xds

import (
	"strings"
	"testing"

	"github.com/switchboard-xds/switchboard/model"
)

// TestApplyKeepsPreviousOnBadService checks Apply's promise for a Service
// whose resources cannot be stored (here two variants for one view): its
// previous resources keep serving, the error names it, and the rest of the
// Update is applied.
func TestApplyKeepsPreviousOnBadService(t *testing.T) {
	c := newTestCache()
	apply(t, c, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	before := c.getView(endpointType, "a", nil)

	bad := svc("a", 2)
	za := model.Variant{Type: model.Assignment, View: model.View{Zone: "z1"}, Resource: bad.Assignments[0]}
	bad.Variants = []model.Variant{za, za}
	_, err := c.Apply(Update{Services: map[string]*model.Resources{"ns/a": bad, "ns/b": svc("b", 7)}})
	if err == nil || !strings.Contains(err.Error(), "ns/a") {
		t.Fatalf("Apply error %v, want one naming ns/a", err)
	}
	if got := c.getView(endpointType, "a", nil); got != before {
		t.Errorf("a's assignment changed to version %s; want the previous one, %s, kept", got.Version(), before.Version())
	}
	want := wireResource("b", typeURLs[endpointType], svc("b", 7).Assignments[0].Wire)
	if got := c.getView(endpointType, "b", nil); got == nil || got.v != want.v {
		t.Errorf("b's assignment was not updated alongside the bad Service")
	}
}
