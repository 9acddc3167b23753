package envoysim

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	dnstablev3 "github.com/envoyproxy/go-control-plane/envoy/data/dns/v3"
)

func TestResolve(t *testing.T) {
	c := goodConfig(t)
	tests := []struct {
		name  string
		qtype uint16
		want  []string
		err   error
	}{
		{"web.ns.svc.cluster.local", TypeA, []string{"10.96.0.10"}, nil},
		{"web.ns.svc.cluster.local.", TypeAAAA, []string{"fd00::10"}, nil},
		{"web.ns", TypeA, []string{"10.96.0.10"}, nil},
		{"a.b.wild.cluster.local", TypeA, []string{"10.96.0.99"}, nil},
		{"_http._tcp.web.ns.svc.cluster.local", TypeSRV, []string{"0 0 80 web.ns.svc.cluster.local"}, nil},
		{"nope.ns.svc.cluster.local", TypeA, nil, ErrForwarded}, // known suffix, unknown name, client_config set
		{"example.com", TypeA, nil, ErrForwarded},
		{"_http._tcp.web.ns", TypeSRV, nil, ErrForwarded}, // SRV only under the full name
	}
	for _, tt := range tests {
		got, err := c.Resolve("dns", tt.name, tt.qtype)
		if !errors.Is(err, tt.err) {
			t.Errorf("Resolve(%q, %d) error %v, want %v", tt.name, tt.qtype, err, tt.err)
		}
		if d := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); d != "" {
			t.Errorf("Resolve(%q, %d) (-want +got):\n%s", tt.name, tt.qtype, d)
		}
	}
}

func TestResolveSRVNeedsKnownSuffix(t *testing.T) {
	// A service_list domain placed before any address_list domain of its
	// suffix is dropped by Envoy; without client_config the answer is
	// NXDOMAIN.
	c := goodConfig(t)
	mutateDNS(t, c, func(d *dnstablev3.DnsTable) {
		vds := d.GetVirtualDomains()
		d.VirtualDomains = append([]*dnstablev3.DnsTable_DnsVirtualDomain{vds[len(vds)-1]}, vds[:len(vds)-1]...)
	})
	if _, err := c.Resolve("dns", "_http._tcp.web.ns.svc.cluster.local", TypeSRV); !errors.Is(err, ErrForwarded) {
		t.Fatalf("SRV before its suffix exists: %v, want %v", err, ErrForwarded)
	}
	stripClient(t, c)
	if _, err := c.Resolve("dns", "_http._tcp.web.ns.svc.cluster.local", TypeSRV); !errors.Is(err, ErrNXDomain) {
		t.Fatalf("without client_config: %v, want %v", err, ErrNXDomain)
	}
}

func TestResolveSRVTargetNeedsAddresses(t *testing.T) {
	c := goodConfig(t)
	mutateDNS(t, c, func(d *dnstablev3.DnsTable) {
		vds := d.GetVirtualDomains()
		svc := vds[len(vds)-1].GetEndpoint().GetServiceList().GetServices()[0]
		svc.Protocol = &dnstablev3.DnsTable_DnsServiceProtocol{ProtocolConfig: &dnstablev3.DnsTable_DnsServiceProtocol_Number{Number: 6}}
		svc.Targets = append(svc.Targets, &dnstablev3.DnsTable_DnsServiceTarget{
			EndpointType: &dnstablev3.DnsTable_DnsServiceTarget_HostName{HostName: "unknown.example"}, Port: 81,
		})
	})
	got, err := c.Resolve("dns", "_http._tcp.web.ns.svc.cluster.local", TypeSRV)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"0 0 80 web.ns.svc.cluster.local"}, got); d != "" {
		t.Fatalf("protocol number 6 is tcp; a target without addresses is dropped (-want +got):\n%s", d)
	}
}

func stripClient(t *testing.T, c *Config) {
	t.Helper()
	cfg, err := c.dnsFilter("dns")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ClientConfig = nil
	c.Listeners["dns"].GetListenerFilters()[0].GetTypedConfig().Value = mustAny(t, cfg).GetValue()
}
