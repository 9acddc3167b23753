package envoysim

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	dnstablev3 "github.com/envoyproxy/go-control-plane/envoy/data/dns/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	dnsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/dns_filter/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestCheckGoodConfig(t *testing.T) {
	if errs := Check(goodConfig(t)); len(errs) != 0 {
		t.Fatalf("good config: %v", errs)
	}
}

// dnsTable returns the fixture's inline DNS table after mutating it with f.
func mutateDNS(t *testing.T, c *Config, f func(*dnstablev3.DnsTable)) {
	l := c.Listeners["dns"]
	var cfg dnsv3.DnsFilterConfig
	if err := l.GetListenerFilters()[0].GetTypedConfig().UnmarshalTo(&cfg); err != nil {
		t.Fatal(err)
	}
	f(cfg.GetServerConfig().GetInlineDnsTable())
	l.ListenerFilters[0].ConfigType = &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &cfg)}
}

func TestCheckRules(t *testing.T) {
	unknownAny := &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.network.nosuch.v3.Nosuch"}
	tests := []struct {
		name   string
		mutate func(t *testing.T, c *Config)
		want   string // substring of one error
	}{
		{"validate", func(t *testing.T, c *Config) { c.Clusters[pass].ConnectTimeout = durationpb.New(-1) }, `cluster "PassthroughCluster": invalid Cluster.ConnectTimeout`},
		{"unknown network filter type", func(t *testing.T, c *Config) {
			c.Listeners["0.0.0.0_5432"].FilterChains[1].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: unknownAny}
		}, `listener "0.0.0.0_5432": filter_chains[1].filters[0].typed_config: unknown or undecodable typed_config`},
		{"unknown extension protocol options", func(t *testing.T, c *Config) {
			c.Clusters[webCanon].TypedExtensionProtocolOptions = map[string]*anypb.Any{"x": unknownAny}
		}, `cluster "web.ns.svc.cluster.local:80": typed_extension_protocol_options[x]: unknown`},
		{"unknown udp_proxy matcher action", func(t *testing.T, c *Config) {
			l := udpProxyListener(t, "udp_10.96.0.30_9000", "10.96.0.30", 9000, qCanon)
			bad := strings.Replace(string(l.ListenerFilters[0].GetTypedConfig().GetValue()), "udp_proxy.v3.Route", "udp_proxy.v3.Nope!", 1)
			l.ListenerFilters[0].GetTypedConfig().Value = []byte(bad)
			c.Listeners[l.Name] = l
		}, `listener "udp_10.96.0.30_9000": listener_filters[0].typed_config`},
		{"filter without typed_config", func(t *testing.T, c *Config) {
			c.Listeners["0.0.0.0_5432"].FilterChains[1].Filters[0].ConfigType = nil
		}, `filter "envoy.filters.network.tcp_proxy" has no typed_config`},
		{"duplicate listener name", func(t *testing.T, c *Config) {
			c.Add(portListener("0.0.0.0_80", "0.0.0.0", 81, tcpProxyChain(t, "x", pass, nil)))
		}, `listener "0.0.0.0_80": duplicate listener`},
		{"duplicate address, bind_to_port false", func(t *testing.T, c *Config) {
			c.Add(portListener("other_80", "0.0.0.0", 80, tcpProxyChain(t, "x", pass, nil)))
		}, `has duplicate address TCP 0.0.0.0:80`},
		{"TCP listener without chains", func(t *testing.T, c *Config) { c.Listeners["0.0.0.0_5432"].FilterChains = nil }, `listener "0.0.0.0_5432": no filter chains specified`},
		{"equal chain matches", func(t *testing.T, c *Config) {
			l := c.Listeners["0.0.0.0_5432"]
			l.FilterChains[1].FilterChainMatch = &listenerv3.FilterChainMatch{}
			l.FilterChains = append(l.FilterChains, tcpProxyChain(t, "again", pass, nil))
		}, `filter chain "again" has the same matching rules defined as "catch-all"`},
		{"same CIDR in two chains", func(t *testing.T, c *Config) {
			l := c.Listeners["0.0.0.0_5432"]
			l.FilterChains = append(l.FilterChains, tcpProxyChain(t, "dup", pass, &listenerv3.FilterChainMatch{
				PrefixRanges: []*corev3.CidrRange{cidr("10.96.0.21", 32), cidr("10.96.0.20", 32)},
			}))
		}, `overlapping matching rules`},
		{"bind_to_port false without use_original_dst", func(t *testing.T, c *Config) { c.Listeners["virtualOutbound"].UseOriginalDst = nil }, `listener "0.0.0.0_80": bind_to_port false but no listener has use_original_dst`},
		{"UDP listener without udp_listener_config", func(t *testing.T, c *Config) { c.Listeners["dns"].UdpListenerConfig = nil }, `listener "dns": UDP listener without udp_listener_config`},
		{"UDP listener with chains", func(t *testing.T, c *Config) {
			c.Listeners["dns"].FilterChains = []*listenerv3.FilterChain{tcpProxyChain(t, "x", pass, nil)}
		}, `listener "dns": UDP listener with filter chains`},
		{"router not last", func(t *testing.T, c *Config) {
			other := &hcmv3.HttpFilter{Name: "second", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &dnsv3.DnsFilterConfig{StatPrefix: "x"})}}
			c.Listeners["0.0.0.0_80"].FilterChains = []*listenerv3.FilterChain{hcmChain(t, hcm("80", routerFilter(t), other))}
		}, `terminal filter named envoy.filters.http.router must be the last filter`},
		{"rds name missing", func(t *testing.T, c *Config) {
			c.Listeners["0.0.0.0_80"].FilterChains = []*listenerv3.FilterChain{hcmChain(t, hcm("8080", routerFilter(t)))}
		}, `listener "0.0.0.0_80": rds route_config_name "8080" has no route configuration`},
		{"duplicate domain", func(t *testing.T, c *Config) {
			rc := c.Routes["80"]
			rc.VirtualHosts = append(rc.VirtualHosts, vhost("dup", webCanon, "WEB.ns"))
		}, `route configuration "80": only unique values for domains are permitted: duplicate entry of domain web.ns`},
		{"two wildcards", func(t *testing.T, c *Config) {
			rc := c.Routes["80"]
			rc.VirtualHosts = append(rc.VirtualHosts, vhost("dup", webCanon, "*"))
		}, `route configuration "80": only a single wildcard domain is permitted`},
		{"route to unknown cluster", func(t *testing.T, c *Config) { delete(c.Clusters, webCanon); delete(c.Assignments, webCanon) }, `route configuration "80" virtual_hosts[0].routes[0].route: unknown cluster "web.ns.svc.cluster.local:80"`},
		{"tcp_proxy to unknown cluster", func(t *testing.T, c *Config) { delete(c.Clusters, dbCanon) }, `listener "0.0.0.0_5432" filter_chains[0].filters[0].typed_config(envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy): unknown cluster`},
		{"udp_proxy to unknown cluster", func(t *testing.T, c *Config) { delete(c.Clusters, qCanon) }, `unknown cluster "q.ns.svc.cluster.local:9000/udp"`},
		{"EDS cluster without assignment", func(t *testing.T, c *Config) { delete(c.Assignments, dbCanon) }, `cluster "db.ns.svc.cluster.local:5432": EDS cluster has no assignment "db.ns.svc.cluster.local:5432"`},
		{"EDS service_name without assignment", func(t *testing.T, c *Config) { c.Clusters[dbCanon].EdsClusterConfig.ServiceName = "other" }, `EDS cluster has no assignment "other"`},
		{"ORIGINAL_DST lb_policy", func(t *testing.T, c *Config) { c.Clusters[pass].LbPolicy = clusterv3.Cluster_ROUND_ROBIN }, `ORIGINAL_DST cluster with lb_policy ROUND_ROBIN`},
		{"ORIGINAL_DST load_assignment", func(t *testing.T, c *Config) { c.Clusters[pass].LoadAssignment = cla(pass, nil) }, `ORIGINAL_DST cluster with load_assignment`},
		{"dns answer_ttl", func(t *testing.T, c *Config) {
			mutateDNS(t, c, func(d *dnstablev3.DnsTable) { d.VirtualDomains[0].AnswerTtl = durationpb.New(29e9) })
		}, `answer_ttl 29s below 30s`},
		{"dns star not first label", func(t *testing.T, c *Config) {
			mutateDNS(t, c, func(d *dnstablev3.DnsTable) { d.VirtualDomains[1].Name = "web.*.svc" })
		}, `"web.*.svc": '*' is allowed only as the first label`},
		{"dns star inside first label", func(t *testing.T, c *Config) {
			mutateDNS(t, c, func(d *dnstablev3.DnsTable) { d.VirtualDomains[1].Name = "*web.ns" })
		}, `"*web.ns": '*' is allowed only as the first label`},
		{"listener without address", func(t *testing.T, c *Config) { c.Listeners["0.0.0.0_5432"].Address = nil }, `listener "0.0.0.0_5432": no socket address`},
		{"http filter without router", func(t *testing.T, c *Config) {
			c.Listeners["0.0.0.0_80"].FilterChains = []*listenerv3.FilterChain{hcmChain(t, hcm("80"))}
		}, `no http_filters (router missing)`},
		{"bind_to_port false counted for duplicates with IPv6", func(t *testing.T, c *Config) {
			c.Add(portListener("v6dup", "0:0::0", 80, tcpProxyChain(t, "x", pass, nil)))
		}, `listener "v6dup": has duplicate address TCP [::]:80`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := goodConfig(t)
			tt.mutate(t, c)
			errs := Check(c)
			for _, err := range errs {
				if strings.Contains(err.Error(), tt.want) {
					return
				}
			}
			t.Fatalf("want an error containing %q, got %d errors: %v", tt.want, len(errs), errs)
		})
	}
}
