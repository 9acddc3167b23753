package translator

import (
	"testing"

	"github.com/switchboard-xds/switchboard/internal/envoysim"
	"github.com/switchboard-xds/switchboard/model"
)

// Walks, as Envoy routes, through the sidecar goldens' worlds for what
// the real-binary test (integration TestSidecar) does not cover: IPv6
// ClusterIPs and visibility-limited Services, per sidecar namespace (the
// inputs have no endpoints: the cluster a walk reaches is what is checked).
func TestSidecarRoutesDualStackAndVisibility(t *testing.T) {
	for _, c := range []struct {
		file, ns string
		conn     envoysim.Conn
		cluster  string // "" for a walk that must fail
		chain    string // the filter chain it must take, when set
	}{
		// http.yaml: api (shop) is dual-stack; admin (ops) is visible to shop.
		{"http", "shop", envoysim.Conn{Protocol: "tcp", DstIP: "fd00::11", DstPort: 80, Host: "[fd00::11]:80"}, "api.shop.svc.cluster.local:80", ""},
		{"http", "shop", envoysim.Conn{Protocol: "tcp", DstIP: "fd00::11", DstPort: 80, Host: "api"}, "api.shop.svc.cluster.local:80", ""},
		{"http", "web", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.0.11", DstPort: 80, Host: "api"}, PassthroughClusterName, ""},
		{"http", "shop", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.0.12", DstPort: 80, Host: "admin.ops"}, "admin.ops.svc.cluster.local:80", ""},
		{"http", "ops", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.0.12", DstPort: 80, Host: "admin"}, "admin.ops.svc.cluster.local:80", ""},
		{"http", "web", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.0.12", DstPort: 80, Host: "admin.ops"}, PassthroughClusterName, ""},
		{"http", "", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.0.12", DstPort: 80, Host: "10.96.0.12:80"}, PassthroughClusterName, ""},
		// http.yaml: payments (shop) is an ExternalName Service, by Host only.
		{"http", "shop", envoysim.Conn{Protocol: "tcp", DstIP: "203.0.113.5", DstPort: 80, Host: "payments"}, "payments.shop.svc.cluster.local:80", ""},
		{"http", "web", envoysim.Conn{Protocol: "tcp", DstIP: "203.0.113.5", DstPort: 80, Host: "payments.shop.svc.cluster.local"}, "payments.shop.svc.cluster.local:80", ""},
		// tcp.yaml: postgres is dual-stack; secret (vault) is visible to vault only.
		{"tcp", "db", envoysim.Conn{Protocol: "tcp", DstIP: "fd00::101", DstPort: 5432}, "postgres.db.svc.cluster.local:5432", ""},
		{"tcp", "db", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.1.2", DstPort: 5432}, "replica.db.svc.cluster.local:5432", ""},
		{"tcp", "vault", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.1.3", DstPort: 5432}, "secret.vault.svc.cluster.local:5432", ""},
		{"tcp", "db", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.1.3", DstPort: 5432}, PassthroughClusterName, ""},
		// udp.yaml: resolver's UDP port on both families; syslog UDP only.
		{"udp", "", envoysim.Conn{Protocol: "udp", DstIP: "fd00::253", DstPort: 53}, "resolver.infra.svc.cluster.local:53/udp", ""},
		{"udp", "", envoysim.Conn{Protocol: "udp", DstIP: "10.96.2.54", DstPort: 514}, "syslog.infra.svc.cluster.local:514/udp", ""},
		{"udp", "", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.2.53", DstPort: 53}, "resolver.infra.svc.cluster.local:53", ""},
		{"udp", "", envoysim.Conn{Protocol: "udp", DstIP: "10.96.2.99", DstPort: 53}, "", ""},
		// headless.yaml: a kafka pod on a port whose catch-all is HTTP.
		{"headless", "", envoysim.Conn{Protocol: "tcp", DstIP: "10.244.7.2", DstPort: 8080}, PassthroughClusterName, ""},
		{"headless", "", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.3.1", DstPort: 8080, Host: "ui.stream"}, "ui.stream.svc.cluster.local:8080", ""},
		{"headless", "", envoysim.Conn{Protocol: "tcp", DstIP: "10.244.8.1", DstPort: 2181}, PassthroughClusterName, ""},
		// ledger (stream) is headless, TCP on the HTTP port, visible to ops:
		// its pods get the raw TCP chain in ops' variant only.
		{"headless", "ops", envoysim.Conn{Protocol: "tcp", DstIP: "10.244.9.9", DstPort: 8080}, PassthroughClusterName, headlessChainName},
		{"headless", "web", envoysim.Conn{Protocol: "tcp", DstIP: "10.244.9.9", DstPort: 8080}, PassthroughClusterName, catchAllChainName},
	} {
		views := loadViews(t, "testdata/sidecar/in/"+c.file+".yaml")
		var parts []model.Resources
		for _, p := range partsOf(views) {
			r, err := Sidecar(sidecarGoldenOptions, p, views)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, r)
		}
		res, err := sidecarConfig(t, views, parts, c.ns).Route(c.conn)
		switch {
		case c.cluster == "" && err == nil:
			t.Errorf("%s, sidecar in %q, %+v: routed to %s, want no route", c.file, c.ns, c.conn, res.Cluster)
		case c.cluster != "" && (err != nil || res.Cluster != c.cluster):
			t.Errorf("%s, sidecar in %q, %+v: cluster %q (%v), want %q", c.file, c.ns, c.conn, res.Cluster, err, c.cluster)
		case c.chain != "" && res.FilterChain != c.chain:
			t.Errorf("%s, sidecar in %q, %+v: filter chain %q, want %q", c.file, c.ns, c.conn, res.FilterChain, c.chain)
		}
	}
}
