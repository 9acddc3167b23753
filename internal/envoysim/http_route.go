package envoysim

// This file walks one HTTP request through the routes of the virtual host
// Route reaches, as Envoy's router picks a route: the first whose match
// accepts the request (source/common/router/config_impl.cc
// RouteMatcher::route, RouteEntryImplBase::matchRoute; path matchers in
// PrefixRouteEntryImpl, PathRouteEntryImpl, RegexRouteEntryImpl,
// PathSeparatedPrefixRouteEntryImpl; headers in
// source/common/http/header_utility.cc matchHeaders; query parameters in
// source/common/router/config_utility.cc QueryParameterMatcher). Regular
// expressions are RE2 in Envoy and Go alike, and match the whole value.

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Request is an HTTP request an application sends through the sidecar: the
// connection (Conn.Host is the Host header), the method ("GET" when
// empty), the path with an optional query, and other headers (lowercase
// names).
type Request struct {
	Conn
	Method  string
	Path    string
	Headers map[string]string
}

// HTTPResult is what Envoy does with a Request: the walk to the virtual
// host (Result, without cluster and endpoints), the route that matched, and
// its action: Clusters (name to weight; one cluster has weight 1) with
// NotFoundCode for a cluster that does not exist (503 unless the route
// says otherwise), or Redirect, or a direct response Status; and the
// request headers the route adds (route then cluster) and removes.
// Matched is the route itself, as served, for what the summary leaves out
// (rewrites, response headers, which headers belong to which weighted
// cluster).
type HTTPResult struct {
	Result
	Route          string
	Matched        *routev3.Route
	Clusters       map[string]uint32
	NotFoundCode   int
	Redirect       *routev3.RedirectAction
	Status         uint32
	AddHeaders     []*corev3.HeaderValueOption
	RemoveHeaders  []string
	MirrorClusters []string
}

// RouteHTTP walks req to a route as Envoy would. A request no route
// matches is ErrNoVirtualHost (404 NR).
func (c *Config) RouteHTTP(req Request) (HTTPResult, error) {
	var res HTTPResult
	dst, err := netip.ParseAddr(req.DstIP)
	if err != nil {
		return res, fmt.Errorf("destination %q: %w", req.DstIP, err)
	}
	dst = dst.Unmap()
	vh, err := c.virtualHost(&res.Result, dst, req.Conn)
	if err != nil {
		return res, err
	}
	if req.Method == "" {
		req.Method = "GET"
	}
	for _, r := range vh.GetRoutes() {
		if !routeMatches(r.GetMatch(), req) {
			continue
		}
		res.Route = r.GetName()
		res.Matched = r
		res.AddHeaders = append(res.AddHeaders, r.GetRequestHeadersToAdd()...)
		res.RemoveHeaders = append(res.RemoveHeaders, r.GetRequestHeadersToRemove()...)
		switch a := r.GetAction().(type) {
		case *routev3.Route_Redirect:
			res.Redirect = a.Redirect
		case *routev3.Route_DirectResponse:
			res.Status = a.DirectResponse.GetStatus()
		case *routev3.Route_Route:
			res.NotFoundCode = 503
			if a.Route.GetClusterNotFoundResponseCode() == routev3.RouteAction_INTERNAL_SERVER_ERROR {
				res.NotFoundCode = 500
			} else if a.Route.GetClusterNotFoundResponseCode() == routev3.RouteAction_NOT_FOUND {
				res.NotFoundCode = 404
			}
			res.Clusters = map[string]uint32{}
			if cl := a.Route.GetCluster(); cl != "" {
				res.Clusters[cl] = 1
			}
			for _, w := range a.Route.GetWeightedClusters().GetClusters() {
				res.Clusters[w.GetName()] += w.GetWeight().GetValue()
				res.AddHeaders = append(res.AddHeaders, w.GetRequestHeadersToAdd()...)
				res.RemoveHeaders = append(res.RemoveHeaders, w.GetRequestHeadersToRemove()...)
			}
			for _, m := range a.Route.GetRequestMirrorPolicies() {
				res.MirrorClusters = append(res.MirrorClusters, m.GetCluster())
			}
		default:
			return res, fmt.Errorf("route %q: action %T not modelled", r.GetName(), a)
		}
		return res, nil
	}
	return res, fmt.Errorf("virtual host %q: no route matches %s %s: %w", vh.GetName(), req.Method, req.Path, ErrNoVirtualHost)
}

// virtualHost is routeTCP's walk up to the virtual host of an HTTP
// connection.
func (c *Config) virtualHost(res *Result, dst netip.Addr, conn Conn) (*routev3.VirtualHost, error) {
	l := c.handOff(dst, conn.DstPort)
	if l == nil {
		return nil, fmt.Errorf("%w: none has use_original_dst", ErrNoListener)
	}
	res.Listener = l.GetName()
	fc := findFilterChain(l, dst, conn.DstPort)
	if fc == nil {
		return nil, fmt.Errorf("listener %q: %w", l.GetName(), ErrNoFilterChain)
	}
	res.FilterChain = fc.GetName()
	fs := fc.GetFilters()
	if len(fs) == 0 {
		return nil, fmt.Errorf("filter chain %q: no filters", fc.GetName())
	}
	m, err := fs[len(fs)-1].GetTypedConfig().UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("filter chain %q: %w", fc.GetName(), err)
	}
	h, ok := hcmOf(m)
	if !ok {
		return nil, fmt.Errorf("filter chain %q: not an HTTP connection manager", fc.GetName())
	}
	rc := h.GetRouteConfig()
	if n := h.GetRds().GetRouteConfigName(); n != "" {
		res.RouteConfig = n
		if rc = c.Routes[n]; rc == nil {
			return nil, fmt.Errorf("%w %q", ErrNoRouteConfig, n)
		}
	}
	if rc == nil {
		return nil, fmt.Errorf("filter chain %q: %w", fc.GetName(), ErrNoRouteConfig)
	}
	vh := findVirtualHost(rc, conn.Host)
	if vh == nil {
		return nil, fmt.Errorf("route configuration %q host %q: %w", rc.GetName(), conn.Host, ErrNoVirtualHost)
	}
	res.VirtualHost = vh.GetName()
	return vh, nil
}

// routeMatches reports whether m accepts req: its path specifier (on the
// path without the query), every header matcher, every query parameter
// matcher. Matchers this model does not know match nothing.
func routeMatches(m *routev3.RouteMatch, req Request) bool {
	path, rawQuery, _ := strings.Cut(req.Path, "?")
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		if !strings.HasPrefix(path, p.Prefix) {
			return false
		}
	case *routev3.RouteMatch_Path:
		if path != p.Path {
			return false
		}
	case *routev3.RouteMatch_SafeRegex:
		if !fullMatch(p.SafeRegex.GetRegex(), path) {
			return false
		}
	case *routev3.RouteMatch_PathSeparatedPrefix:
		if path != p.PathSeparatedPrefix && !strings.HasPrefix(path, p.PathSeparatedPrefix+"/") {
			return false
		}
	default:
		return false
	}
	for _, h := range m.GetHeaders() {
		if !headerMatches(h, req) {
			return false
		}
	}
	query, _ := url.ParseQuery(rawQuery)
	for _, q := range m.GetQueryParameters() {
		v, ok := query[q.GetName()]
		if !ok || len(v) == 0 || !stringMatches(q.GetStringMatch(), v[0]) {
			return false
		}
	}
	return true
}

func headerMatches(h *routev3.HeaderMatcher, req Request) bool {
	var value string
	var present bool
	switch name := strings.ToLower(h.GetName()); name {
	case ":method":
		value, present = req.Method, true
	case ":path":
		value, present = req.Path, true
	case ":authority", "host":
		value, present = req.Host, true
	default:
		value, present = req.Headers[name]
	}
	var ok bool
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		ok = present && stringMatches(s.StringMatch, value)
	case *routev3.HeaderMatcher_ExactMatch:
		ok = present && value == s.ExactMatch //nolint:staticcheck // deprecated, but Envoy still reads it
	case *routev3.HeaderMatcher_SafeRegexMatch:
		ok = present && fullMatch(s.SafeRegexMatch.GetRegex(), value) //nolint:staticcheck // deprecated, but Envoy still reads it
	case *routev3.HeaderMatcher_PresentMatch:
		ok = present == s.PresentMatch
	default:
		return false
	}
	return ok != h.GetInvertMatch()
}

func stringMatches(m *matcherv3.StringMatcher, v string) bool {
	if m.GetIgnoreCase() {
		v = strings.ToLower(v)
	}
	lower := func(s string) string {
		if m.GetIgnoreCase() {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return v == lower(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(v, lower(p.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(v, lower(p.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(v, lower(p.Contains))
	case *matcherv3.StringMatcher_SafeRegex:
		return fullMatch(p.SafeRegex.GetRegex(), v)
	}
	return false
}

// fullMatch is RE2's FullMatch, as Envoy's regex matchers use it.
func fullMatch(pattern, v string) bool {
	re, err := regexp.Compile("^(?:" + pattern + ")$")
	return err == nil && re.MatchString(v)
}
