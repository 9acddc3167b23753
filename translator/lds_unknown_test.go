package translator

import (
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

func TestUnknownListener(t *testing.T) {
	l := unknownListener("greeeter.demo:50051")
	if err := l.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if l.GetName() != "greeeter.demo:50051" {
		t.Fatalf("name = %q", l.GetName())
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := l.GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	if err := hcm.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if f := hcm.GetHttpFilters(); len(f) == 0 || f[len(f)-1].GetName() != routerFilterName {
		t.Fatalf("filters = %v, want the router last (grpc-go and C-core NACK otherwise)", f)
	}
	vhs := hcm.GetRouteConfig().GetVirtualHosts()
	if len(vhs) != 1 || len(vhs[0].GetDomains()) != 1 || vhs[0].GetDomains()[0] != UnknownDomain {
		t.Fatalf("virtual hosts = %v, want one matching only %q", vhs, UnknownDomain)
	}
}
