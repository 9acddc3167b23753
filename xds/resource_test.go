package xds

import (
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// TestVersionsOnTheWire pins the strings that carry versions: a client that
// reconnects to a replica of another build must see the same versions for
// the same content.
func TestVersionsOnTheWire(t *testing.T) {
	a := wireResource("a", resourcev3.ClusterType, []byte("cluster a"))
	b := wireResource("b", resourcev3.ClusterType, []byte{})
	if got, want := a.Version(), "0203f9908eef9d22"; got != want {
		t.Errorf("version of a = %s, want %s", got, want)
	}
	if got, want := b.Version(), "cbf29ce484222325"; got != want {
		t.Errorf("version of b = %s, want %s", got, want)
	}
	if got, want := responseVersion([]*Resource{a, b}, []string{"c"}), "2cc8fbdd9cf6bda6"; got != want {
		t.Errorf("response version = %s, want %s", got, want)
	}
	d := a.deltaResource()
	if d.GetName() != "a" || d.GetVersion() != a.Version() || d.GetResource().GetTypeUrl() != resourcev3.ClusterType || string(d.GetResource().GetValue()) != "cluster a" {
		t.Errorf("delta resource = %v", d)
	}
	if a.deltaResource() != d {
		t.Error("delta resource is built again")
	}
	if got := parseVersion(a.Version()); got != a.v {
		t.Errorf("parseVersion(%s) = %x, want %x", a.Version(), got, a.v)
	}
}

// An Encoded without a version (not made by model.NewEncoded) gets its
// content version from the cache, so two contents never share one and a
// change is seen.
func TestEncodedWithoutVersion(t *testing.T) {
	a := encodedResource(resourcev3.ClusterType, model.Encoded{Name: "a", Wire: []byte("cluster a")})
	b := encodedResource(resourcev3.ClusterType, model.Encoded{Name: "a", Wire: []byte("cluster a, changed")})
	if a.v == b.v {
		t.Fatalf("two contents share version %s", a.Version())
	}
	if want := model.NewEncoded("a", []byte("cluster a")).Version; a.v != want {
		t.Errorf("version %x, want the content version %x", a.v, want)
	}
}
