package translator

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"testing"

	"github.com/switchboard-xds/switchboard/model"
)

// The assembled DNS listener is byte for byte what marshalling the whole
// message gives, on every sidecar golden input and on none.
func TestSidecarWireEqualsMessages(t *testing.T) {
	at := netip.MustParseAddrPort("127.0.0.1:15053")
	opts := sidecarGoldenOptions
	for _, name := range []string{"", "http", "dns", "headless", "tcp", "udp"} {
		var views []*model.Service
		if name != "" {
			views = loadViews(t, "testdata/sidecar/in/"+name+".yaml")
		}
		var records []DNSRecords
		for _, v := range slices.Backward(views) { // DNSListener sorts
			r, err := NewDNSRecords(opts, v)
			if err != nil {
				t.Fatal(err)
			}
			if r.Wire != nil {
				records = append(records, r)
			}
		}
		got, err := DNSListener(opts, records)
		if err != nil {
			t.Fatal(err)
		}
		sorted := slices.Clone(views)
		slices.SortFunc(sorted, func(a, b *model.Service) int {
			return cmp.Or(cmp.Compare(a.Key.Namespace, b.Key.Namespace), cmp.Compare(a.Key.Name, b.Key.Name))
		})
		l, err := dnsListener(at, dnsTable("cluster.local", sorted))
		if err != nil {
			t.Fatal(err)
		}
		want, err := deterministic.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Listeners) != 1 || !bytes.Equal(got.Listeners[0].Wire, want) {
			t.Errorf("%q: assembled DNS listener differs from the marshalled message", name)
		}
	}
}

// An IPv4 and an IPv6 DNS address give two listeners, dns and dns6, with
// one table; two of a family, or a bad one, are refused.
func TestSidecarDNSAddresses(t *testing.T) {
	opts := Options{SidecarDNS: "[::1]:15053, 127.0.0.1:15053"}
	res, err := DNSListener(opts, nil)
	if err != nil || len(res.Listeners) != 2 || res.Listeners[0].Name != DNSListenerName || res.Listeners[1].Name != DNS6ListenerName {
		t.Fatalf("DNSListener(%q) = %v, %v; want dns and dns6", opts.SidecarDNS, res.Listeners, err)
	}
	for _, bad := range []string{"127.0.0.1:1,127.0.0.2:2", "[::1]:1,[::2]:2", "127.0.0.1:1,", "localhost:53"} {
		if err := (Options{SidecarDNS: bad}).Validate(); err == nil {
			t.Errorf("SidecarDNS %q accepted", bad)
		}
	}
}
