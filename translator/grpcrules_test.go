package translator

// checkGRPCRules applies the client-side rules of grpc-go v1.85's xDS client
// (google.golang.org/grpc@v1.85.0/internal/xds/xdsclient/xdsresource/
// unmarshal_{lds,rds,cds,eds}.go) to what the translator sends, so that a
// resource a gRPC client would NACK, or accept and then fail calls with, is
// caught here first. Each check names the grpc-go function it mirrors; checks
// marked "ours" are stricter than grpc-go, for cases measured against the
// real clients as silent failures or that other clients NACK.
//
// Fields the translator does not send yet are rejected as "unchecked": a
// change that starts sending one must extend this file with grpc-go's rule.

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

const (
	hcmTypeURL    = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	routerTypeURL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
)

// checkGRPCRules fails t for every resource in res that a grpc-go v1.85
// client would reject, and for references a client could not follow:
// listener → route (and a virtual host matching every name that reaches it,
// aliases included) → cluster → assignment.
func checkGRPCRules(t testing.TB, res decoded) {
	t.Helper()
	for _, err := range grpcRuleErrors(res) {
		t.Error(err)
	}
}

// grpcRuleErrors is checkGRPCRules returning the errors, so that the checker
// itself can be tested.
func grpcRuleErrors(res decoded) []error {
	var errs []error
	add := func(kind, name string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
		}
	}
	routes := map[string]*routev3.RouteConfiguration{}
	for _, rc := range res.Routes {
		add("route", rc.GetName(), grpcRoute(rc))
		routes[rc.GetName()] = rc
	}
	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range res.Clusters {
		add("cluster", c.GetName(), grpcCluster(c))
		clusters[c.GetName()] = c
	}
	haveCLA := map[string]bool{}
	for _, cla := range res.Assignments {
		add("assignment", cla.GetClusterName(), grpcEDS(cla))
		haveCLA[cla.GetClusterName()] = true
	}
	for _, cv := range res.ClusterVariants {
		add("cluster variant "+cv.Class, cv.Cluster.GetName(), grpcCluster(cv.Cluster))
		if clusters[cv.Cluster.GetName()] == nil {
			errs = append(errs, fmt.Errorf("cluster variant %q has no plain cluster", cv.Cluster.GetName()))
		}
	}
	for _, za := range res.ZoneAssignments {
		add("zone "+za.Zone+" assignment", za.Assignment.GetClusterName(), grpcEDS(za.Assignment))
		if !haveCLA[za.Assignment.GetClusterName()] {
			errs = append(errs, fmt.Errorf("zone %s assignment %q has no plain assignment", za.Zone, za.Assignment.GetClusterName()))
		}
	}
	// A client dials a name and subscribes to the Listener of that name; the
	// resolver then picks the virtual host matching the same name
	// (xdsdepmgr: FindBestMatchingVirtualHost(dataplaneAuthority, ...)).
	dial := func(name string, lis *listenerv3.Listener) {
		rdsName, err := grpcListener(lis)
		add("listener", name, err)
		if err != nil {
			return
		}
		rc := routes[rdsName]
		if rc == nil {
			add("listener", name, fmt.Errorf("route %q not in resources", rdsName))
			return
		}
		vh := findBestMatchingVirtualHost(name, rc.GetVirtualHosts())
		if vh == nil {
			add("listener", name, fmt.Errorf("no virtual host of %q matches %q", rdsName, name))
			return
		}
		for _, r := range vh.GetRoutes() {
			names := []string{r.GetRoute().GetCluster()}
			if wc := r.GetRoute().GetWeightedClusters(); wc != nil {
				names = names[:0]
				for _, c := range wc.GetClusters() {
					names = append(names, c.GetName())
				}
			}
			for _, c := range names {
				if clusters[c] == nil {
					add("listener", name, fmt.Errorf("route %q sends to cluster %q, not in resources", rdsName, c))
				}
			}
		}
	}
	for _, lis := range res.Listeners {
		dial(lis.GetName(), lis)
	}
	for alias, canonical := range res.Aliases {
		lis := apiListener(alias, canonical)
		if lis.GetName() != alias {
			add("alias", alias, fmt.Errorf("AliasListener named it %q", lis.GetName()))
		}
		dial(alias, lis)
	}
	// cdsbalancer: the EDS resource a cluster watches is its service_name.
	for _, c := range res.Clusters {
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		if sn := c.GetEdsClusterConfig().GetServiceName(); !haveCLA[sn] {
			add("cluster", c.GetName(), fmt.Errorf("assignment %q not in resources", sn))
		}
	}
	return errs
}

// grpcListener mirrors unmarshalListenerResource, processClientSideListener
// and processHTTPFilters (unmarshal_lds.go) and returns the RDS name.
func grpcListener(lis *listenerv3.Listener) (string, error) {
	// unmarshalListenerResource: "empty resource name in listener resource".
	if lis.GetName() == "" {
		return "", errors.New("empty resource name")
	}
	// processListener: without api_listener it is a server-side listener,
	// which a client dialling this name cannot use (ours).
	if lis.GetApiListener() == nil {
		return "", errors.New("no api_listener")
	}
	// processClientSideListener: the api_listener must be an HCM.
	a := lis.GetApiListener().GetApiListener()
	if a.GetTypeUrl() != hcmTypeURL {
		return "", fmt.Errorf("unexpected http connection manager resource type: %q", a.GetTypeUrl())
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := a.UnmarshalTo(hcm); err != nil {
		return "", fmt.Errorf("failed to unmarshal api_listener: %w", err)
	}
	// processClientSideListener, gRFC A41.
	if hcm.GetXffNumTrustedHops() != 0 {
		return "", errors.New("xff_num_trusted_hops must be unset or zero")
	}
	if len(hcm.GetOriginalIpDetectionExtensions()) != 0 {
		return "", errors.New("original_ip_detection_extensions must be empty")
	}
	var rdsName string
	switch hcm.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		// processClientSideListener: "LDS's RDS configSource is not ADS or Self".
		cs := hcm.GetRds().GetConfigSource()
		if cs.GetAds() == nil && cs.GetSelf() == nil {
			return "", errors.New("LDS's RDS configSource is not ADS or Self")
		}
		if rdsName = hcm.GetRds().GetRouteConfigName(); rdsName == "" {
			return "", errors.New("empty route_config_name")
		}
	case *hcmv3.HttpConnectionManager_RouteConfig:
		return "", errors.New("unchecked: inline route_config")
	default:
		// processClientSideListener: "no RouteSpecifier" / unsupported type.
		return "", fmt.Errorf("unsupported RouteSpecifier %T", hcm.GetRouteSpecifier())
	}
	// processHTTPFilters(server=false): names set and unique, configs parse
	// with a registered client filter, a terminal filter last and only last.
	filters := hcm.GetHttpFilters()
	seen := map[string]bool{}
	var kept []bool // terminal?
	for _, f := range filters {
		if f.GetName() == "" {
			return "", errors.New("filter missing name field")
		}
		if seen[f.GetName()] {
			return "", fmt.Errorf("duplicate filter name %q", f.GetName())
		}
		seen[f.GetName()] = true
		// validateHTTPFilterConfig: only the router is mirrored here (the
		// only filter we send); router.ParseFilterConfig unmarshals a Router.
		switch tc := f.GetTypedConfig(); tc.GetTypeUrl() {
		case routerTypeURL:
			if err := tc.UnmarshalTo(&routerv3.Router{}); err != nil {
				return "", fmt.Errorf("router: error parsing config: %w", err)
			}
			kept = append(kept, true)
		default:
			if f.GetIsOptional() {
				continue // unknown optional filters are ignored
			}
			return "", fmt.Errorf("no filter implementation found for %q", tc.GetTypeUrl())
		}
	}
	if len(kept) == 0 {
		return "", errors.New("http filters list is empty")
	}
	for i, terminal := range kept {
		if terminal != (i == len(kept)-1) {
			return "", errors.New("terminal filter not last, or last filter not terminal")
		}
	}
	return rdsName, nil
}

// grpcRoute mirrors unmarshalRouteConfigResource,
// generateRDSUpdateFromRouteConfiguration and routesProtoToSlice
// (unmarshal_rds.go).
func grpcRoute(rc *routev3.RouteConfiguration) error {
	if rc.GetName() == "" {
		return errors.New("empty resource name")
	}
	// processClusterSpecifierPlugins: no plugin is registered in a plain
	// client, so any non-optional plugin is a NACK; we send none.
	if len(rc.GetClusterSpecifierPlugins()) != 0 {
		return errors.New("unchecked: cluster_specifier_plugins")
	}
	for _, vh := range rc.GetVirtualHosts() {
		// matchTypeForDomain: an invalid domain makes
		// FindBestMatchingVirtualHost return nil for every host (ours: fail).
		for _, d := range vh.GetDomains() {
			if d == "" || strings.Contains(strings.TrimPrefix(strings.TrimSuffix(d, "*"), "*"), "*") {
				return fmt.Errorf("invalid domain %q", d)
			}
		}
		if err := grpcRetry(vh.GetRetryPolicy()); err != nil {
			return err
		}
		// processHTTPFilterOverrides: the router accepts no override.
		if len(vh.GetTypedPerFilterConfig()) != 0 {
			return errors.New("unchecked: virtual host typed_per_filter_config")
		}
		// ours: a virtual host without routes fails every call.
		if len(vh.GetRoutes()) == 0 {
			return fmt.Errorf("virtual host %q has no routes", vh.GetName())
		}
		for _, r := range vh.GetRoutes() {
			if err := grpcRouteEntry(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// grpcRouteEntry mirrors the loop body of routesProtoToSlice.
func grpcRouteEntry(r *routev3.Route) error {
	m := r.GetMatch()
	if m == nil {
		return errors.New("route doesn't have a match")
	}
	// Routes with query parameter matchers are ignored (ours: fail, a route
	// we send must be used).
	if len(m.GetQueryParameters()) != 0 {
		return errors.New("route with query parameters is ignored by gRPC")
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix, *routev3.RouteMatch_Path:
	case *routev3.RouteMatch_SafeRegex:
		if _, err := regexp.Compile(ps.SafeRegex.GetRegex()); err != nil {
			return fmt.Errorf("invalid regex %q", ps.SafeRegex.GetRegex())
		}
	default:
		return fmt.Errorf("route has unrecognized path specifier %T", ps)
	}
	if m.GetRuntimeFraction() != nil {
		return errors.New("unchecked: runtime_fraction")
	}
	for _, h := range m.GetHeaders() {
		if err := grpcHeaderMatcher(h); err != nil {
			return err
		}
	}
	// processHTTPFilterOverrides on the route.
	if len(r.GetTypedPerFilterConfig()) != 0 {
		return errors.New("unchecked: route typed_per_filter_config")
	}
	switch r.GetAction().(type) {
	case *routev3.Route_Route:
	default:
		// RouteActionUnsupported is accepted and calls fail; NonForwarding is
		// server-side only (ours: fail both).
		return fmt.Errorf("route action %T is not a route", r.GetAction())
	}
	a := r.GetRoute()
	if err := grpcRoutePolicy(a); err != nil {
		return err
	}
	switch cs := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if cs.Cluster == "" {
			return errors.New("route to an empty cluster name") // ours
		}
	case *routev3.RouteAction_WeightedClusters:
		var total uint64
		for _, c := range cs.WeightedClusters.GetClusters() {
			total += uint64(c.GetWeight().GetValue())
		}
		if total == 0 || total > math.MaxUint32 {
			return errors.New("weighted clusters total weight is 0 or exceeds MaxUint32")
		}
	case *routev3.RouteAction_ClusterSpecifierPlugin:
		return errors.New("cluster specifier plugin not in Route Configuration")
	default:
		// Ignored by grpc-go (ours: fail).
		return fmt.Errorf("route with unknown cluster specifier %T is ignored", cs)
	}
	return grpcRetry(a.GetRetryPolicy())
}

// grpcHeaderMatcher mirrors the header loop of routesProtoToSlice for the
// matchers the translator sends (exact_match, safe_regex_match); others
// are unchecked.
func grpcHeaderMatcher(h *routev3.HeaderMatcher) error {
	if h.GetInvertMatch() {
		return errors.New("unchecked: inverted header matcher")
	}
	// ours: grpc-go lowercases the name, so an uppercase one never matches;
	// a pseudo-header is not in a call's metadata.
	if h.GetName() != strings.ToLower(h.GetName()) || strings.HasPrefix(h.GetName(), ":") || h.GetName() == "" {
		return fmt.Errorf("header matcher name %q never matches a gRPC call", h.GetName())
	}
	switch p := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_ExactMatch:
	case *routev3.HeaderMatcher_SafeRegexMatch:
		// The regex must compile.
		if _, err := regexp.Compile(p.SafeRegexMatch.GetRegex()); err != nil { //nolint:staticcheck // what the translator sends gRPC clients
			return fmt.Errorf("route has an invalid header matcher: %w", err)
		}
	case *routev3.HeaderMatcher_StringMatch:
		// ours: C-core 1.51 NACKs it ("Invalid route header matcher
		// specified"), measured in TestMeshRouteMatches.
		return errors.New("header string_match is NACKed by C-core 1.51")
	default:
		return fmt.Errorf("unchecked: header matcher %T", p)
	}
	return nil
}

// grpcRetry mirrors generateRetryConfig.
func grpcRetry(rp *routev3.RetryPolicy) error {
	if rp == nil {
		return nil
	}
	if rp.GetNumRetries() != nil && rp.GetNumRetries().GetValue() < 1 {
		return errors.New("retry_policy.num_retries must be >= 1")
	}
	if b := rp.GetRetryBackOff(); b != nil {
		if b.GetBaseInterval().AsDuration() <= 0 {
			return errors.New("retry_policy.base_interval must be > 0")
		}
		if b.GetMaxInterval() != nil && b.GetMaxInterval().AsDuration() <= 0 {
			return errors.New("retry_policy.max_interval must be > 0")
		}
	}
	return nil
}

// grpcCluster mirrors unmarshalClusterResource and
// validateClusterAndConstructClusterUpdate (unmarshal_cds.go).
func grpcCluster(c *clusterv3.Cluster) error {
	if c.GetName() == "" {
		return errors.New("empty resource name")
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
	case clusterv3.Cluster_RING_HASH:
		if c.GetRingHashLbConfig().GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			return errors.New("unsupported ring_hash hash function")
		}
	case clusterv3.Cluster_LEAST_REQUEST:
		if cc := c.GetLeastRequestLbConfig().GetChoiceCount(); cc != nil && cc.GetValue() < 2 {
			return errors.New("LeastRequestLbConfig.ChoiceCount must be >= 2")
		}
	default:
		return fmt.Errorf("unexpected lbPolicy %v", c.GetLbPolicy())
	}
	// securityConfigFromCluster: not sent yet.
	if len(c.GetTransportSocketMatches()) != 0 {
		return errors.New("unsupported transport_socket_matches field is non-empty")
	}
	if c.GetTransportSocket() != nil {
		return errors.New("unchecked: transport_socket")
	}
	// outlierConfigFromCluster, xdslbregistry.ConvertToServiceConfig,
	// circuit breakers, metadata, and no field this file does not check.
	if err := grpcClusterPolicy(c); err != nil {
		return err
	}
	// lrs_server must be self.
	if lrs := c.GetLrsServer(); lrs != nil && lrs.GetSelf() == nil {
		return errors.New("unsupported config_source_specifier in lrs_server field")
	}
	switch {
	case c.GetType() == clusterv3.Cluster_EDS:
		cs := c.GetEdsClusterConfig().GetEdsConfig()
		if cs.GetAds() == nil && cs.GetSelf() == nil {
			return errors.New("CDS's EDS config source is not ADS or Self")
		}
		if strings.HasPrefix(c.GetName(), "xdstp:") && c.GetEdsClusterConfig().GetServiceName() == "" {
			return errors.New("CDS's EDS service name is not set with a new-style cluster name")
		}
		// ours: an empty service_name makes the client watch the cluster name.
		if c.GetEdsClusterConfig().GetServiceName() == "" {
			return errors.New("empty eds service_name")
		}
		return nil
	case c.GetType() == clusterv3.Cluster_LOGICAL_DNS:
		// dnsHostNameFromCluster: exactly one locality with one endpoint,
		// a socket address with no custom resolver, a host and a port.
		eps := c.GetLoadAssignment().GetEndpoints()
		if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
			return errors.New("LOGICAL_DNS load_assignment must have exactly one locality with one endpoint")
		}
		sa := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if sa == nil || sa.GetResolverName() != "" || sa.GetAddress() == "" || sa.GetPortValue() == 0 {
			return errors.New("LOGICAL_DNS endpoint needs a socket address with a host and a port, no resolver name")
		}
		return nil
	default:
		// Aggregate clusters are not sent.
		return fmt.Errorf("unchecked cluster type %v", c.GetType())
	}
}

// grpcEDS mirrors unmarshalEndpointsResource, parseEDSRespProto and
// parseEndpoints (unmarshal_eds.go).
func grpcEDS(cla *endpointv3.ClusterLoadAssignment) error {
	if cla.GetClusterName() == "" {
		return errors.New("empty resource name")
	}
	// parseDropPolicy.
	for _, d := range cla.GetPolicy().GetDropOverloads() {
		switch d.GetDropPercentage().GetDenominator() {
		case typev3.FractionalPercent_HUNDRED, typev3.FractionalPercent_TEN_THOUSAND, typev3.FractionalPercent_MILLION:
		default:
			return errors.New("drop policy with unsupported denominator")
		}
	}
	priorities := map[uint32]map[string]bool{}
	sums := map[uint32]uint64{}
	unique := map[string]bool{}
	for _, l := range cla.GetEndpoints() {
		loc := l.GetLocality()
		if loc == nil {
			return errors.New("EDS response contains a locality without ID")
		}
		// ours: an all-empty locality reads as "no locality" to some clients.
		if loc.GetRegion() == "" && loc.GetZone() == "" && loc.GetSubZone() == "" {
			return errors.New("empty locality")
		}
		// grpc-go ignores a locality with weight 0 (silently: calls then fail
		// with "no targets to pick from"); ours: fail.
		w := l.GetLoadBalancingWeight().GetValue()
		if w == 0 {
			return fmt.Errorf("locality %v has weight 0 or unset", loc)
		}
		p := l.GetPriority()
		if sums[p] += uint64(w); sums[p] > math.MaxUint32 {
			return fmt.Errorf("sum of weights of localities at priority %d exceeded maximal value", p)
		}
		if priorities[p] == nil {
			priorities[p] = map[string]bool{}
		}
		id := loc.GetRegion() + "\x00" + loc.GetZone() + "\x00" + loc.GetSubZone()
		if priorities[p][id] {
			return fmt.Errorf("duplicate locality %v with the same priority %d", loc, p)
		}
		priorities[p][id] = true
		if l.GetMetadata() != nil {
			return errors.New("unchecked: locality metadata")
		}
		// ours: a locality with weight but no endpoint is never picked.
		if len(l.GetLbEndpoints()) == 0 {
			return fmt.Errorf("locality %v has no endpoints", loc)
		}
		if err := grpcEndpoints(l.GetLbEndpoints(), unique); err != nil {
			return err
		}
	}
	for i := range len(priorities) {
		if _, ok := priorities[uint32(i)]; !ok {
			return fmt.Errorf("priority %d missing", i)
		}
	}
	return nil
}

// grpcEndpoints mirrors parseEndpoints; unique holds every "host:port" seen
// in the assignment (dual-stack additional addresses included, as
// GRPC_EXPERIMENTAL_XDS_DUALSTACK_ENDPOINTS defaults to true).
func grpcEndpoints(eps []*endpointv3.LbEndpoint, unique map[string]bool) error {
	var total uint64
	for _, e := range eps {
		weight := uint64(1)
		if w := e.GetLoadBalancingWeight(); w != nil {
			if w.GetValue() == 0 {
				return errors.New("EDS response contains an endpoint with zero weight")
			}
			weight = uint64(w.GetValue())
		}
		if total += weight; total > math.MaxUint32 {
			return errors.New("sum of weights of endpoints in the same locality exceeds maximum value")
		}
		// ours: gRPC uses HEALTHY and UNKNOWN only; anything else would give
		// the locality weight for an endpoint it drops.
		switch e.GetHealthStatus() {
		case corev3.HealthStatus_HEALTHY, corev3.HealthStatus_UNKNOWN:
		default:
			return fmt.Errorf("endpoint health %v is not used by gRPC", e.GetHealthStatus())
		}
		if e.GetMetadata() != nil {
			return errors.New("unchecked: endpoint metadata")
		}
		addrs := []*corev3.Address{e.GetEndpoint().GetAddress()}
		for _, a := range e.GetEndpoint().GetAdditionalAddresses() {
			addrs = append(addrs, a.GetAddress())
		}
		for _, a := range addrs {
			sa := a.GetSocketAddress()
			// ours: gRPC dials what it gets; check it is an IP and a port.
			ip, err := netip.ParseAddr(sa.GetAddress())
			if err != nil || sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
				return fmt.Errorf("endpoint %q port %d is not dialable", sa.GetAddress(), sa.GetPortValue())
			}
			hp := netip.AddrPortFrom(ip, uint16(sa.GetPortValue())).String()
			if unique[hp] {
				return fmt.Errorf("duplicate endpoint with the same address %s", hp)
			}
			unique[hp] = true
		}
	}
	return nil
}

// findBestMatchingVirtualHost mirrors xdsresource.FindBestMatchingVirtualHost
// (matcher.go): exact > suffix ("*x") > prefix ("x*") > universal ("*"),
// longer pattern first within a type, nil when a domain is invalid.
func findBestMatchingVirtualHost(host string, vhs []*routev3.VirtualHost) *routev3.VirtualHost {
	const (
		invalid = iota
		universal
		prefix
		suffix
		exact
	)
	var best *routev3.VirtualHost
	bestType, bestLen := invalid, 0
	for _, vh := range vhs {
		for _, d := range vh.GetDomains() {
			typ, matched := invalid, false
			switch {
			case d == "":
			case d == "*":
				typ, matched = universal, true
			case strings.HasPrefix(d, "*"):
				typ, matched = suffix, strings.HasSuffix(host, d[1:])
			case strings.HasSuffix(d, "*"):
				typ, matched = prefix, strings.HasPrefix(host, d[:len(d)-1])
			case strings.Contains(d, "*"):
			default:
				typ, matched = exact, d == host
			}
			if typ == invalid {
				return nil
			}
			if bestType > typ || (bestType == typ && bestLen >= len(d)) || !matched {
				continue
			}
			best, bestType, bestLen = vh, typ, len(d)
		}
	}
	return best
}
