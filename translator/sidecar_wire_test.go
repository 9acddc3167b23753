package translator

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/switchboard-xds/switchboard/model"
)

// The assembled route configurations and DNS listeners are byte for byte
// what marshalling the whole message gives, for the plain resource and
// every variant, on every sidecar golden input.
func TestSidecarWireEqualsMessages(t *testing.T) {
	at := netip.MustParseAddrPort("127.0.0.1:15053")
	for _, name := range []string{"http", "dns", "headless", "tcp", "udp"} {
		views := loadViews(t, "testdata/sidecar/in/"+name+".yaml")
		for _, part := range partsOf(views) {
			ins := sidecarInputs(part, views)
			nss := append([]string{""}, variantNamespaces(ins)...)
			var assembled func(ns string) model.Encoded
			var reference func(ns string) ([]byte, error)
			switch part.Kind {
			case SidecarTCP:
				var http []sidecarInput
				for _, in := range ins {
					if !in.svc.Headless && IsHTTPPort(in.port) {
						http = append(http, in)
					}
				}
				if len(http) == 0 {
					continue
				}
				plain, vs, err := routeVariants("cluster.local", part.Port, "r", http)
				if err != nil {
					t.Fatal(err)
				}
				assembled = pickVariant(plain, vs)
				reference = func(ns string) ([]byte, error) {
					return deterministic.Marshal(portRoute("cluster.local", part.Port, "r", ns, http))
				}
			case SidecarDNS:
				plain, vs, err := dnsVariants(at, "cluster.local", ins)
				if err != nil {
					t.Fatal(err)
				}
				assembled = pickVariant(plain, vs)
				reference = func(ns string) ([]byte, error) {
					l, err := dnsListener(at, dnsTable("cluster.local", ns, ins))
					if err != nil {
						return nil, err
					}
					return deterministic.Marshal(l)
				}
			default:
				continue
			}
			for _, ns := range nss {
				want, err := reference(ns)
				if err != nil {
					t.Fatal(err)
				}
				if got := assembled(ns); !bytes.Equal(got.Wire, want) {
					t.Errorf("%s %s, namespace %q: assembled bytes differ from the marshalled message (%d vs %d bytes)", name, part, ns, len(got.Wire), len(want))
				}
			}
		}
	}
}

func pickVariant(plain model.Encoded, vs []model.Variant) func(string) model.Encoded {
	return func(ns string) model.Encoded {
		for _, v := range vs {
			if v.View.Namespace == ns {
				return v.Resource
			}
		}
		return plain
	}
}
