package translator

import (
	"net/http"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

// This file builds a mesh route rule's route for Envoy sidecars: header
// modifiers, redirects, rewrites, mirrors, timeouts and retries as Envoy's
// route API has them.

// envoy builds the rule's route for Envoy, for match m. The share of
// requests that cannot be forwarded gets 500 (HTTPRoute) or 503, read by
// gRPC clients as UNAVAILABLE (GRPCRoute): see directFailure and
// envoyInvalidCluster.
func (b *ruleBuild) envoy(m model.RouteMatch) *routev3.Route {
	r := &routev3.Route{}
	a := &routev3.RouteAction{}
	var redirect *routev3.RedirectAction
	for _, fl := range b.rule.Filters {
		switch fl.Type {
		case model.FilterRequestHeaderModifier:
			r.RequestHeadersToAdd, r.RequestHeadersToRemove = headerOptions(fl.RequestHeaders)
		case model.FilterResponseHeaderModifier:
			r.ResponseHeadersToAdd, r.ResponseHeadersToRemove = headerOptions(fl.ResponseHeaders)
		case model.FilterRequestRedirect:
			var ok bool
			if redirect, ok = b.redirect(fl.Redirect, m); !ok {
				return b.directFailure()
			}
		case model.FilterURLRewrite:
			if !b.rewrite(a, fl.Rewrite, m) {
				return b.directFailure()
			}
		case model.FilterRequestMirror:
			if fl.Mirror == nil {
				continue
			}
			cluster, reason := backendCluster(b.in.Domain, b.in.Mesh, b.route, fl.Mirror.Backend)
			if reason != "" {
				b.report(fl.Type, "RequestMirror: %s; not mirrored", reason)
				continue
			}
			pct := fl.Mirror.Percent
			if pct <= 0 || pct > 100 {
				pct = 100
			}
			a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
				Cluster: cluster,
				RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{
					Numerator: uint32(pct), Denominator: typev3.FractionalPercent_HUNDRED,
				}},
			})
		default:
			b.report(fl.Type, "filter %s is not supported: the rule's requests fail", fl.Type)
			return b.directFailure()
		}
	}
	if redirect != nil {
		r.Action = &routev3.Route_Redirect{Redirect: redirect}
		return r
	}
	// An HTTPRoute's share that cannot be forwarded gets 500 from a cluster
	// that is never served (cluster_not_found_response_code); a
	// GRPCRoute's gets 503 from the port's failing cluster, served for gRPC
	// clients (see FailingCluster): UNAVAILABLE for a gRPC client either way.
	invalid := envoyInvalidCluster(b.in.Canonical)
	if b.route.Key.Kind == model.KindGRPCRoute {
		invalid = FailingCluster(b.in.Canonical)
	}
	shares := b.shares(func(bk model.BackendRef, s *share) bool {
		for _, fl := range bk.Filters {
			switch fl.Type {
			case model.FilterRequestHeaderModifier:
				s.reqAdd, s.reqRemove = headerOptions(fl.RequestHeaders)
			case model.FilterResponseHeaderModifier:
				s.respAdd, s.respRemove = headerOptions(fl.ResponseHeaders)
			default:
				b.report(fl.Type, "backendRef %s: filter %s is not supported on a backend: its share of requests fails", backendLabel(bk), fl.Type)
				return false
			}
		}
		return true
	}, invalid)
	if len(shares) == 0 {
		b.setClusters(a, nil, invalid) // reports
		return b.directFailure()
	}
	b.setClusters(a, shares, invalid)
	for _, s := range shares {
		if s.cluster == envoyInvalidCluster(b.in.Canonical) {
			a.ClusterNotFoundResponseCode = routev3.RouteAction_INTERNAL_SERVER_ERROR
		}
	}
	// Envoy's default route timeout is 15 s; the spec's default is none.
	a.Timeout = durationpb.New(b.rule.RequestTimeout)
	if rt := b.rule.Retry; rt != nil {
		p := &routev3.RetryPolicy{RetryOn: "retriable-status-codes"}
		for _, c := range rt.Codes {
			p.RetriableStatusCodes = append(p.RetriableStatusCodes, uint32(c))
		}
		if rt.Attempts > 0 {
			p.NumRetries = wrapperspb.UInt32(uint32(rt.Attempts))
		}
		if rt.Backoff > 0 {
			p.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(rt.Backoff)}
		}
		if b.rule.BackendTimeout > 0 {
			p.PerTryTimeout = durationpb.New(b.rule.BackendTimeout)
		}
		a.RetryPolicy = p
	} else if b.rule.BackendTimeout > 0 && b.rule.RequestTimeout == 0 {
		a.Timeout = durationpb.New(b.rule.BackendTimeout) // one attempt: the same thing
	}
	r.Action = &routev3.Route_Route{Route: a}
	return r
}

// directFailure is the route of a rule whose requests cannot be
// forwarded: 500, as the HTTPRoute spec asks; 503 for a GRPCRoute, which
// a gRPC client reads as UNAVAILABLE, as the GRPCRoute spec asks (500
// would read as INTERNAL).
func (b *ruleBuild) directFailure() *routev3.Route {
	code := uint32(http.StatusInternalServerError)
	if b.route.Key.Kind == model.KindGRPCRoute {
		code = http.StatusServiceUnavailable
	}
	return &routev3.Route{Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: code}}}
}

// headerOptions are a header modifier as Envoy's header options: set
// overwrites, add appends.
func headerOptions(h *model.HeaderModifier) (add []*corev3.HeaderValueOption, remove []string) {
	if h == nil {
		return nil, nil
	}
	for _, s := range h.Set {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: strings.ToLower(s.Name), Value: s.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, s := range h.Add {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: strings.ToLower(s.Name), Value: s.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	for _, name := range h.Remove {
		remove = append(remove, strings.ToLower(name))
	}
	return add, remove
}

// redirect is a RequestRedirect filter as Envoy's redirect action.
func (b *ruleBuild) redirect(rd *model.Redirect, m model.RouteMatch) (*routev3.RedirectAction, bool) {
	out := &routev3.RedirectAction{}
	if rd == nil {
		return out, true
	}
	if rd.Scheme != "" {
		out.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: rd.Scheme}
	}
	out.HostRedirect = rd.Hostname
	if rd.Port > 0 {
		out.PortRedirect = uint32(rd.Port)
	}
	if p := rd.Path; p != nil {
		switch p.Type {
		case model.ReplaceFullPath:
			out.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: p.Value}
		case model.ReplacePrefixMatch:
			prefix, ok := b.matchedPrefix(m)
			if !ok {
				return nil, false
			}
			if v := strings.TrimRight(p.Value, "/"); v != "" {
				out.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: v}
			} else {
				out.PathRewriteSpecifier = &routev3.RedirectAction_RegexRewrite{RegexRewrite: prefixToRoot(prefix)}
			}
		}
	}
	switch rd.StatusCode {
	case http.StatusMovedPermanently:
		out.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
	case http.StatusSeeOther:
		out.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case http.StatusTemporaryRedirect:
		out.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case http.StatusPermanentRedirect:
		out.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	default:
		out.ResponseCode = routev3.RedirectAction_FOUND // the spec's default, 302
	}
	return out, true
}

// rewrite applies a URLRewrite filter to a.
func (b *ruleBuild) rewrite(a *routev3.RouteAction, rw *model.Rewrite, m model.RouteMatch) bool {
	if rw == nil {
		return true
	}
	if rw.Hostname != "" {
		a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Hostname}
	}
	if p := rw.Path; p != nil {
		switch p.Type {
		case model.ReplaceFullPath:
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: regex("^/.*$"), Substitution: p.Value}
		case model.ReplacePrefixMatch:
			prefix, ok := b.matchedPrefix(m)
			if !ok {
				return false
			}
			if v := strings.TrimRight(p.Value, "/"); v != "" {
				a.PrefixRewrite = v
			} else {
				a.RegexRewrite = prefixToRoot(prefix)
			}
		}
	}
	return true
}

// matchedPrefix is the PathPrefix of m that a ReplacePrefixMatch replaces;
// false (reported) when m has none, which the spec makes invalid.
func (b *ruleBuild) matchedPrefix(m model.RouteMatch) (string, bool) {
	if m.Path == nil {
		return "/", true
	}
	if m.Path.Type != model.MatchPathPrefix {
		b.report(model.ReplacePrefixMatch, "ReplacePrefixMatch needs a PathPrefix match: the rule's requests fail")
		return "", false
	}
	return strings.TrimRight(m.Path.Value, "/"), true
}

// prefixToRoot replaces prefix (and the slashes after it) by "/": a
// ReplacePrefixMatch of "/", which prefix_rewrite would write as "//rest".
func prefixToRoot(prefix string) *matcherv3.RegexMatchAndSubstitute {
	return &matcherv3.RegexMatchAndSubstitute{Pattern: regex("^" + regexp.QuoteMeta(prefix) + "/*"), Substitution: "/"}
}
