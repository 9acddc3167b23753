package translator

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/switchboard-xds/switchboard/model"
)

// TestWireShortcuts checks listenerWire, routeWire and clusterWire, which
// write their bytes directly, against the messages they stand for, marshalled: the same
// bytes for every shape of names (single and multi-port, long and short
// names, another cluster domain), so a resource's version does not depend on
// the way it was built.
func TestWireShortcuts(t *testing.T) {
	cases := 0
	for _, domain := range []string{"cluster.local", "corp.example"} {
		for _, key := range []model.ServiceKey{
			{Namespace: "n", Name: "s"},
			{Namespace: "a-very-long-namespace-name-of-63-characters-xxxxxxxxxxxxxxxxxxxx", Name: "a-long-service-name-of-sixty-three-characters-xxxxxxxxxxxxxxxxx"},
		} {
			for _, port := range []int32{1, 80, 65535} {
				for _, single := range []bool{true, false} {
					var buf [7]string
					canonical, aliases, short := portNames(&buf, domain, key, port, single)
					name := fmt.Sprintf("%s/%s/%d/%v", domain, key, port, single)

					got, err := listenerWire(canonical, canonical)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					want, err := encode(canonical, apiListener(canonical, canonical))
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if got.Name != canonical || !bytes.Equal(got.Wire, want.Wire) {
						t.Errorf("%s: listener differs from the message marshalled\n got %x\nwant %x", name, got.Wire, want.Wire)
					}

					got, err = routeWire(policy{}, canonical, aliases, short)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					want, err = encode(canonical, routeConfiguration(canonical, aliases, short))
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if got.Name != canonical || !bytes.Equal(got.Wire, want.Wire) {
						t.Errorf("%s: route differs from the message marshalled\n got %x\nwant %x", name, got.Wire, want.Wire)
					}
					got, perr, err := clusterWire(policy{}, canonical, "")
					if err != nil || perr != nil {
						t.Fatalf("%s: %v, %v", name, perr, err)
					}
					c, err := policyCluster(policy{}, canonical, "")
					if err != nil {
						t.Fatal(err)
					}
					if want, err = encode(canonical, c); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if got.Name != canonical || !bytes.Equal(got.Wire, want.Wire) {
						t.Errorf("%s: cluster differs from the message marshalled\n got %x\nwant %x", name, got.Wire, want.Wire)
					}
					cases++
				}
			}
		}
	}
	if cases != 24 {
		t.Fatalf("ran %d cases", cases)
	}
}

// TestZoneNotUTF8 checks that an endpoint whose zone is not UTF-8, which
// no client could decode, is skipped with a diagnostic while the others
// are served, on both the shortcut's view shape and the general one.
func TestZoneNotUTF8(t *testing.T) {
	for _, ready := range []bool{true, false} {
		eps := []model.Endpoint{
			{Addresses: []string{"10.0.0.1"}, Port: 80, Ready: true, Zone: "a"},
			{Addresses: []string{"10.0.0.2"}, Port: 80, Ready: true, Zone: "b\xff"},
			{Addresses: []string{"10.0.0.3"}, Port: 80, Ready: ready, Serving: true, Terminating: !ready, Region: "\xfe", Zone: "c"},
		}
		res, diags := translate(t, Options{}, &model.Service{
			Key: model.ServiceKey{Namespace: "n", Name: "s"}, SliceCount: 1,
			Ports: []model.Port{{Name: "grpc", Port: 80, Endpoints: eps}},
		})
		if len(diags) != 2 {
			t.Errorf("ready=%v: diagnostics %v, want one for each bad endpoint", ready, diags)
		}
		if got := claAddrs(res.Assignments[0]); len(got) != 1 || got[0] != "10.0.0.1" {
			t.Errorf("ready=%v: served %v, want only 10.0.0.1", ready, got)
		}
	}
}
