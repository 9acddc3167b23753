package translator

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/switchboard-xds/switchboard/internal/envoysim"
	"github.com/switchboard-xds/switchboard/model"
)

// sidecarWorld is what a sidecar of namespace ns holds for the sidecar
// golden input file.
func sidecarWorld(t *testing.T, file, ns string) *envoysim.Config {
	t.Helper()
	views := loadViews(t, "testdata/sidecar/in/"+file+".yaml")
	parts := []model.Resources{}
	for _, p := range partsOf(views) {
		r, err := Sidecar(sidecarGoldenOptions, p, views)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, r)
	}
	cfg := sidecarConfig(t, views, parts, ns)
	cfg.LookupHost = func(host string) []netip.Addr {
		return map[string][]netip.Addr{"mail.example.com": {netip.MustParseAddr("198.51.100.25")}}[host]
	}
	return cfg
}

// Walks, as Envoy routes, through the sidecar goldens' worlds for what
// the real-binary test (integration TestSidecar) does not cover: IPv6
// ClusterIPs, visibility-limited Services per sidecar namespace,
// ExternalName and headless Services (the inputs have no endpoints: the
// cluster a walk reaches is what is checked). The address decides: any
// Host reaches the Service of the ClusterIP dialled.
func TestSidecarRoutesDualStackAndVisibility(t *testing.T) {
	for _, c := range []struct {
		file, ns string
		conn     envoysim.Conn
		cluster  string // "" for a walk that must fail
	}{
		// http.yaml: api (shop) is dual-stack; admin (ops) is visible to shop.
		{"http", "shop", envoysim.Conn{Protocol: "tcp", DstIP: "fd00::11", DstPort: 80, Host: "[fd00::11]:80"}, "api.shop.svc.cluster.local:80"},
		{"http", "shop", envoysim.Conn{Protocol: "tcp", DstIP: "fd00::11", DstPort: 80, Host: "api"}, "api.shop.svc.cluster.local:80"},
		{"http", "web", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.0.11", DstPort: 80, Host: "whatever.example"}, "api.shop.svc.cluster.local:80"},
		{"http", "", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.0.10", DstPort: 80, Host: "web.web"}, "web.web.svc.cluster.local:80"},
		{"http", "shop", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.0.12", DstPort: 80, Host: "admin.ops"}, "admin.ops.svc.cluster.local:80"},
		{"http", "ops", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.0.12", DstPort: 80, Host: "admin"}, "admin.ops.svc.cluster.local:80"},
		{"http", "web", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.0.12", DstPort: 80, Host: "admin.ops"}, PassthroughClusterName},
		{"http", "", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.0.12", DstPort: 80, Host: "10.96.0.12:80"}, PassthroughClusterName},
		// http.yaml: payments (shop) is an ExternalName Service: its
		// resolved address passes through.
		{"http", "shop", envoysim.Conn{Protocol: "tcp", DstIP: "203.0.113.5", DstPort: 80, Host: "payments"}, PassthroughClusterName},
		// tcp.yaml: postgres is dual-stack; secret (vault) is visible to vault only.
		{"tcp", "db", envoysim.Conn{Protocol: "tcp", DstIP: "fd00::101", DstPort: 5432}, "postgres.db.svc.cluster.local:5432"},
		{"tcp", "db", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.1.2", DstPort: 5432}, "replica.db.svc.cluster.local:5432"},
		{"tcp", "vault", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.1.3", DstPort: 5432}, "secret.vault.svc.cluster.local:5432"},
		{"tcp", "db", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.1.3", DstPort: 5432}, PassthroughClusterName},
		// udp.yaml: resolver's UDP port on both families; syslog UDP only;
		// metrics (infra) is visible to web: its UDP listener only there.
		{"udp", "", envoysim.Conn{Protocol: "udp", DstIP: "fd00::253", DstPort: 53}, "resolver.infra.svc.cluster.local:53/udp"},
		{"udp", "", envoysim.Conn{Protocol: "udp", DstIP: "10.96.2.54", DstPort: 514}, "syslog.infra.svc.cluster.local:514/udp"},
		{"udp", "", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.2.53", DstPort: 53}, "resolver.infra.svc.cluster.local:53"},
		{"udp", "", envoysim.Conn{Protocol: "udp", DstIP: "10.96.2.99", DstPort: 53}, ""},
		{"udp", "web", envoysim.Conn{Protocol: "udp", DstIP: "10.96.2.55", DstPort: 8125}, "metrics.infra.svc.cluster.local:8125/udp"},
		{"udp", "infra", envoysim.Conn{Protocol: "udp", DstIP: "10.96.2.55", DstPort: 8125}, "metrics.infra.svc.cluster.local:8125/udp"},
		{"udp", "shop", envoysim.Conn{Protocol: "udp", DstIP: "10.96.2.55", DstPort: 8125}, ""},
		// headless.yaml: pods pass through on every port, HTTP or not;
		// ui's ClusterIP on the same port reaches ui.
		{"headless", "", envoysim.Conn{Protocol: "tcp", DstIP: "10.244.7.2", DstPort: 8080}, PassthroughClusterName},
		{"headless", "", envoysim.Conn{Protocol: "tcp", DstIP: "10.96.3.1", DstPort: 8080, Host: "ui.stream"}, "ui.stream.svc.cluster.local:8080"},
		{"headless", "", envoysim.Conn{Protocol: "tcp", DstIP: "10.244.8.1", DstPort: 2181}, PassthroughClusterName},
		{"headless", "ops", envoysim.Conn{Protocol: "tcp", DstIP: "10.244.9.9", DstPort: 8080}, PassthroughClusterName},
	} {
		res, err := sidecarWorld(t, c.file, c.ns).Route(c.conn)
		switch {
		case c.cluster == "" && err == nil:
			t.Errorf("%s, sidecar in %q, %+v: routed to %s, want no route", c.file, c.ns, c.conn, res.Cluster)
		case c.cluster != "" && (err != nil || res.Cluster != c.cluster):
			t.Errorf("%s, sidecar in %q, %+v: cluster %q (%v), want %q", c.file, c.ns, c.conn, res.Cluster, err, c.cluster)
		}
	}
}

// What an application in a pod of each namespace gets for every name form
// of dns.yaml's Services, through the pod's search path and the DNS
// listener: the table holds full names only.
func TestSidecarDNSNameForms(t *testing.T) {
	for _, c := range []struct {
		ns, name string
		qtype    uint16
		want     []string // nil: not answered locally (forwarded)
	}{
		{"shop", "api", envoysim.TypeA, []string{"10.96.4.1"}},
		{"shop", "api", envoysim.TypeAAAA, []string{"fd00::401"}},
		{"web", "api.shop", envoysim.TypeA, []string{"10.96.4.1"}},
		{"web", "api.shop.svc", envoysim.TypeA, []string{"10.96.4.1"}},
		{"web", "api.shop.svc.cluster.local", envoysim.TypeA, []string{"10.96.4.1"}},
		{"web", "api.shop.svc.cluster.local.", envoysim.TypeA, []string{"10.96.4.1"}},
		{"web", "api", envoysim.TypeA, nil}, // web has no api
		// SRV: left to the cluster's DNS.
		{"web", "_http._tcp.api.shop.svc.cluster.local", envoysim.TypeSRV, nil},
		// db is headless: its pods, from its cluster's assignment.
		{"shop", "db", envoysim.TypeA, []string{"10.244.9.1"}},
		// mail is ExternalName: the address its cluster resolved.
		{"shop", "mail", envoysim.TypeA, []string{"198.51.100.25"}},
		{"infra", "cache", envoysim.TypeA, []string{"10.96.4.2"}},
		{"infra", "example.com", envoysim.TypeA, nil},
	} {
		got, err := sidecarWorld(t, "dns", c.ns).ResolveInPod(DNSListenerName, c.ns, "cluster.local", c.name, c.qtype)
		switch {
		case c.want == nil && !errors.Is(err, envoysim.ErrForwarded):
			t.Errorf("pod in %s: %s (type %d) = %v, %v; want it forwarded", c.ns, c.name, c.qtype, got, err)
		case c.want != nil && (err != nil || !slices.Equal(got, c.want)):
			t.Errorf("pod in %s: %s (type %d) = %v, %v; want %v", c.ns, c.name, c.qtype, got, err, c.want)
		}
	}
}
