package translator

import (
	"fmt"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

// This file builds the action of one mesh route rule: where its calls go
// (backend shares), and its filters, timeouts and retries, for one client
// flavour. What a flavour cannot do is decided here, in one place per
// feature, and reported:
//
// gRPC clients
//   - RequestRedirect, URLRewrite and any filter not named below: the
//     calls cannot be redirected or rewritten by a gRPC client (a rewritten
//     path is another method), so the rule's calls fail with UNAVAILABLE
//     (sent to FailingCluster) rather than reach a backend unchanged;
//   - RequestHeaderModifier, ResponseHeaderModifier, RequestMirror: the
//     calls are forwarded as the rule says, without the modification or
//     the mirror copy (gRPC clients ignore them in silence, so the
//     diagnostic is the only trace);
//   - timeouts.backendRequest: gRPC has one deadline per call; applied as
//     the call's max_stream_duration when it is the only timeout and there
//     are no retries (then it is the same thing), else reported;
//   - retry: codes as gRPC's HTTP-to-status mapping gives them (400
//     internal; 429, 502, 503, 504 unavailable); other codes reported.
//
// Envoy sidecars get every filter of the Gateway API's HTTP features but
// CORS, ExternalAuth and ExtensionRef, whose rules fail (see directFailure).

// ruleBuild builds the route template of one rule for one flavour.
type ruleBuild struct {
	in    *RuleInput
	route *model.MeshRoute
	index int
	rule  *model.RouteRule
	f     Flavour

	diags   []Diagnostic
	failing bool
}

func (b *ruleBuild) report(feature, format string, args ...any) {
	d := b.in.diag(b.route, feature, fmt.Sprintf("rule %s: ", ruleLabel(b.index, b.rule))+fmt.Sprintf(format, args...))
	if feature != "" {
		d.Flavour = b.f
	}
	b.diags = append(b.diags, d)
}

// share is one backend's part of a rule's calls.
type share struct {
	cluster string
	weight  uint32
	// headers are Envoy's per-backend header modifications.
	reqAdd, respAdd       []*corev3.HeaderValueOption
	reqRemove, respRemove []string
}

// build returns the route (without name and match) of the rule for the
// match m (a prefix rewrite depends on the match's path).
func (b *ruleBuild) build(m model.RouteMatch) *routev3.Route {
	if b.f == FlavourEnvoy {
		return b.envoy(m)
	}
	return b.grpc()
}

// grpc builds the rule's route for gRPC clients.
func (b *ruleBuild) grpc() *routev3.Route {
	fail := false
	for _, fl := range b.rule.Filters {
		switch fl.Type {
		case model.FilterRequestHeaderModifier, model.FilterResponseHeaderModifier, model.FilterRequestMirror:
			b.report(fl.Type, "%s is not applied for gRPC clients: their calls are forwarded without it", fl.Type)
		default:
			fail = true
			b.report(fl.Type, "gRPC clients cannot apply %s: the rule's calls fail with UNAVAILABLE", fl.Type)
		}
	}
	a := &routev3.RouteAction{}
	if fail {
		b.failing = true
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: FailingCluster(b.in.Canonical)}
		return &routev3.Route{Action: &routev3.Route_Route{Route: a}}
	}
	shares := b.shares(func(bk model.BackendRef, _ *share) bool {
		for _, fl := range bk.Filters {
			switch fl.Type {
			case model.FilterRequestHeaderModifier, model.FilterResponseHeaderModifier, model.FilterRequestMirror:
				b.report(fl.Type, "backendRef %s: %s is not applied for gRPC clients: calls are forwarded without it", backendLabel(bk), fl.Type)
			default:
				b.report(fl.Type, "backendRef %s: gRPC clients cannot apply %s: its share of calls fails with UNAVAILABLE", backendLabel(bk), fl.Type)
				return false
			}
		}
		return true
	}, FailingCluster(b.in.Canonical))
	b.setClusters(a, shares, FailingCluster(b.in.Canonical))
	r := b.rule
	switch {
	case r.RequestTimeout > 0:
		a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(r.RequestTimeout)}
		if r.BackendTimeout > 0 {
			b.report("timeouts.backendRequest", "timeouts.backendRequest is not applied for gRPC clients (one deadline per call; timeouts.request is)")
		}
	case r.BackendTimeout > 0 && r.Retry == nil:
		a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(r.BackendTimeout)}
	case r.BackendTimeout > 0:
		b.report("timeouts.backendRequest", "timeouts.backendRequest is not applied for gRPC clients with retries (gRPC has no per-attempt timeout)")
	}
	if r.Retry != nil {
		a.RetryPolicy = b.grpcRetry(r.Retry)
	}
	return &routev3.Route{Action: &routev3.Route_Route{Route: a}}
}

// grpcRetry is the gRPC retry policy (gRFC A44) of an HTTPRoute retry, or
// nil when none of its codes has a gRPC status gRPC retries on.
func (b *ruleBuild) grpcRetry(rt *model.RouteRetry) *routev3.RetryPolicy {
	var on []string
	for _, c := range rt.Codes {
		var code string
		switch c {
		case 400:
			code = "internal"
		case 429, 502, 503, 504:
			code = "unavailable"
		default:
			b.report("retry.codes", "retry code %d has no gRPC status that gRPC clients retry on; not retried", c)
			continue
		}
		if !slices.Contains(on, code) {
			on = append(on, code)
		}
	}
	if len(on) == 0 {
		return nil
	}
	slices.Sort(on)
	p := &routev3.RetryPolicy{RetryOn: strings.Join(on, ",")}
	if rt.Attempts > 0 {
		p.NumRetries = wrapperspb.UInt32(uint32(rt.Attempts))
	}
	if rt.Backoff > 0 {
		p.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(rt.Backoff)}
	}
	return p
}

// shares resolves the rule's backends into shares of its calls, merging
// backends that name one cluster. A backend whose weight is 0 gets none; one
// that does not resolve, or for which filters reports false (a backend
// filter the flavour cannot apply), gets its share sent to failing.
// filters may set Envoy's header modifications on the share.
func (b *ruleBuild) shares(filters func(model.BackendRef, *share) bool, failing string) []share {
	var out []share
	add := func(s share) {
		for i := range out {
			if out[i].cluster == s.cluster && s.reqAdd == nil && s.respAdd == nil && s.reqRemove == nil && s.respRemove == nil &&
				out[i].reqAdd == nil && out[i].respAdd == nil && out[i].reqRemove == nil && out[i].respRemove == nil {
				out[i].weight += s.weight
				return
			}
		}
		out = append(out, s)
	}
	for _, bk := range b.rule.Backends {
		cluster, reason := backendCluster(b.in.Domain, b.in.Mesh, b.route, bk)
		if reason != "" {
			if bk.Weight > 0 {
				b.report("", "%s; its share of calls fails", reason)
			} else {
				b.report("", "%s (weight 0: no calls)", reason)
			}
		}
		if bk.Weight <= 0 {
			continue
		}
		s := share{cluster: cluster, weight: uint32(bk.Weight)}
		if cluster != "" {
			if !filters(bk, &s) {
				s = share{weight: s.weight}
			}
		}
		if s.cluster == "" {
			s.cluster = failing
			if failing == FailingCluster(b.in.Canonical) {
				b.failing = true
			}
		}
		add(s)
	}
	return out
}

// setClusters points a at the shares: one cluster, or weighted clusters.
// With no share (no backend, or every weight 0) the calls go to failing.
func (b *ruleBuild) setClusters(a *routev3.RouteAction, shares []share, failing string) {
	if len(shares) == 0 {
		if len(b.rule.Backends) == 0 {
			b.report("", "no backendRefs: the rule's calls fail")
		} else {
			b.report("", "every backendRef has weight 0: the rule's calls fail")
		}
		if failing == FailingCluster(b.in.Canonical) {
			b.failing = true
		}
		shares = []share{{cluster: failing, weight: 1}}
	}
	if len(shares) == 1 && shares[0].reqAdd == nil && shares[0].respAdd == nil && shares[0].reqRemove == nil && shares[0].respRemove == nil {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: shares[0].cluster}
		return
	}
	wc := &routev3.WeightedCluster{}
	for _, s := range shares {
		wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
			Name:                    s.cluster,
			Weight:                  wrapperspb.UInt32(s.weight),
			RequestHeadersToAdd:     s.reqAdd,
			RequestHeadersToRemove:  s.reqRemove,
			ResponseHeadersToAdd:    s.respAdd,
			ResponseHeadersToRemove: s.respRemove,
		})
	}
	a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
}
