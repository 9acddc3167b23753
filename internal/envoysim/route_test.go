package envoysim

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoute(t *testing.T) {
	c := goodConfig(t)
	webEPs := []string{"10.1.0.1:8080", "10.1.0.2:8080"} // DRAINING and UNHEALTHY excluded
	tests := []struct {
		name string
		conn Conn
		want Result
	}{
		{
			"http by canonical name",
			Conn{"tcp", "10.96.0.10", 80, "web.ns.svc.cluster.local"},
			Result{Listener: "0.0.0.0_80", FilterChain: "catch-all", RouteConfig: "80", VirtualHost: webCanon, Cluster: webCanon, Endpoints: webEPs},
		},
		{
			"http host is lowercased, port counts",
			Conn{"tcp", "10.96.0.10", 80, "WEB.ns:80"},
			Result{Listener: "0.0.0.0_80", FilterChain: "catch-all", RouteConfig: "80", VirtualHost: webCanon, Cluster: webCanon, Endpoints: webEPs},
		},
		{
			"http over IPv6 goes to [::]_80",
			Conn{"tcp", "fd00::10", 80, "[fd00::10]:80"},
			Result{Listener: "[::]_80", FilterChain: "catch-all", RouteConfig: "80", VirtualHost: webCanon, Cluster: webCanon, Endpoints: webEPs},
		},
		{
			"unknown host falls to the * passthrough vhost",
			Conn{"tcp", "10.0.0.7", 80, "example.com"},
			Result{Listener: "0.0.0.0_80", FilterChain: "catch-all", RouteConfig: "80", VirtualHost: "passthrough", Cluster: pass, Endpoints: []string{"10.0.0.7:80"}, Passthrough: true},
		},
		{
			"tcp by ClusterIP chain",
			Conn{"tcp", "10.96.0.20", 5432, ""},
			Result{Listener: "0.0.0.0_5432", FilterChain: dbCanon, Cluster: dbCanon, Endpoints: []string{"10.1.0.4:5432"}},
		},
		{
			"tcp other IP on the port: catch-all",
			Conn{"tcp", "10.96.0.21", 5432, ""},
			Result{Listener: "0.0.0.0_5432", FilterChain: "catch-all", Cluster: pass, Endpoints: []string{"10.96.0.21:5432"}, Passthrough: true},
		},
		{
			"tcp port without listener stays on virtualOutbound",
			Conn{"tcp", "192.0.2.1", 443, ""},
			Result{Listener: "virtualOutbound", FilterChain: pass, Cluster: pass, Endpoints: []string{"192.0.2.1:443"}, Passthrough: true},
		},
		{
			"udp to ClusterIP",
			Conn{"udp", "10.96.0.30", 9000, ""},
			Result{Listener: "udp_10.96.0.30_9000", Cluster: qCanon, Endpoints: []string{"10.1.0.5:9000"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Route(tt.conn)
			if err != nil {
				t.Fatalf("Route(%+v): %v", tt.conn, err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Fatalf("Route(%+v) (-want +got):\n%s", tt.conn, d)
			}
		})
	}
}

func TestRouteVirtualHostOrder(t *testing.T) {
	c := goodConfig(t)
	rc := c.Routes["80"]
	rc.VirtualHosts = append(rc.VirtualHosts,
		vhost("short-suffix", webCanon, "*.com"),
		vhost("long-suffix", webCanon, "*.example.com"),
		vhost("prefix", webCanon, "api.*"),
		vhost("exact", webCanon, "api.example.com"),
	)
	for host, want := range map[string]string{
		"api.example.com": "exact",
		"www.example.com": "long-suffix",
		"api.example.org": "prefix",
		"api.foo.com":     "short-suffix", // a suffix wildcard wins over a prefix one
		".com":            "passthrough",  // "*.com" needs at least one character before ".com"
		"other.org":       "passthrough",
	} {
		got, err := c.Route(Conn{"tcp", "10.0.0.7", 80, host})
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		if got.VirtualHost != want {
			t.Errorf("host %q: virtual host %q, want %q", host, got.VirtualHost, want)
		}
	}
}

func TestRouteErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		conn   Conn
		want   error
	}{
		{"no capture listener", func(c *Config) { delete(c.Listeners, "virtualOutbound") }, Conn{"tcp", "10.96.0.10", 80, "web.ns"}, ErrNoListener},
		{"no chain", func(c *Config) {
			c.Listeners["0.0.0.0_5432"].FilterChains = c.Listeners["0.0.0.0_5432"].FilterChains[:1]
		}, Conn{"tcp", "10.96.0.21", 5432, ""}, ErrNoFilterChain},
		{"no route config", func(c *Config) { delete(c.Routes, "80") }, Conn{"tcp", "10.96.0.10", 80, "web.ns"}, ErrNoRouteConfig},
		{"no vhost: 404 NR", func(c *Config) { c.Routes["80"].VirtualHosts = c.Routes["80"].VirtualHosts[:1] }, Conn{"tcp", "10.96.0.10", 80, "nope"}, ErrNoVirtualHost},
		{"unknown cluster: NC", func(c *Config) { delete(c.Clusters, webCanon) }, Conn{"tcp", "10.96.0.10", 80, "web.ns"}, ErrNoCluster},
		{"udp without listener", func(*Config) {}, Conn{"udp", "10.96.0.31", 9000, ""}, ErrNoListener},
		{"udp to the dns listener is not a proxy", func(*Config) {}, Conn{"udp", "127.0.0.1", 15053, ""}, ErrNoFilterChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := goodConfig(t)
			tt.mutate(c)
			_, err := c.Route(tt.conn)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Route(%+v) = %v, want %v", tt.conn, err, tt.want)
			}
		})
	}
}
