package translator

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// This file turns the matches of mesh route rules (model.RouteMatch) into
// RouteMatch messages, for one client flavour. A match a flavour cannot
// express is left out with the reason, never matched differently.

// Flavour is the kind of client a route is built for: what its router can
// do decides how some matches and filters are written, or whether they can
// be written at all.
type Flavour int

const (
	// FlavourGRPC is a proxyless gRPC client (grpc-go, grpc-js-xds,
	// C-core): no path_separated_prefix (grpc-go NACKs the whole
	// RouteConfiguration), no query parameters (a route with them is
	// skipped), no filters but the router.
	FlavourGRPC Flavour = iota
	// FlavourEnvoy is an Envoy sidecar: everything the Gateway API's HTTP
	// features need.
	FlavourEnvoy
)

// String returns "grpc" or "envoy", as diagnostics and metrics show it.
func (f Flavour) String() string {
	if f == FlavourEnvoy {
		return "envoy"
	}
	return "grpc"
}

// matchOf returns the RouteMatch of m, a match of a route of kind kind, for
// flavour f. It returns nil and the reason when the match cannot be written
// for f: then it matches no request of that flavour's clients, and the
// caller leaves it out. A reason with a nil match is the only way a match
// is dropped. feature is set when the match is valid but f cannot express
// it (see Diagnostic.Feature).
func matchOf(kind string, m model.RouteMatch, f Flavour) (rm *routev3.RouteMatch, reason, feature string) {
	out := &routev3.RouteMatch{}
	if kind == model.KindGRPCRoute {
		if reason := grpcMethodMatch(out, m.GRPC); reason != "" {
			return nil, reason, ""
		}
	} else {
		if reason := pathMatch(out, m.Path, f); reason != "" {
			return nil, reason, ""
		}
		if m.Method != "" {
			if f == FlavourGRPC {
				// Every gRPC call is a POST.
				if m.Method != http.MethodPost {
					return nil, fmt.Sprintf("method %s never matches a gRPC call (always POST); match left out", m.Method), "method"
				}
			} else {
				out.Headers = append(out.Headers, headerMatcher(":method", model.MatchExact, m.Method, f))
			}
		}
	}
	seen := map[string]bool{}
	for _, h := range m.Headers {
		name := strings.ToLower(h.Name)
		if seen[name] {
			continue // the spec: the first match of a name counts, the others are ignored
		}
		seen[name] = true
		if h.Type == model.MatchRegularExpression {
			if _, err := regexp.Compile(h.Value); err != nil {
				return nil, fmt.Sprintf("header %s: invalid regular expression %q; match left out", h.Name, h.Value), ""
			}
		}
		out.Headers = append(out.Headers, headerMatcher(name, h.Type, h.Value, f))
	}
	if len(m.QueryParams) > 0 {
		if f == FlavourGRPC {
			return nil, "query parameter match: a gRPC call has no query string (and gRPC clients skip such routes); match left out", "queryParams"
		}
		seenQ := map[string]bool{}
		for _, q := range m.QueryParams {
			if seenQ[q.Name] {
				continue
			}
			seenQ[q.Name] = true
			if q.Type == model.MatchRegularExpression {
				if _, err := regexp.Compile(q.Value); err != nil {
					return nil, fmt.Sprintf("query parameter %s: invalid regular expression %q; match left out", q.Name, q.Value), ""
				}
			}
			out.QueryParameters = append(out.QueryParameters, &routev3.QueryParameterMatcher{
				Name:                         q.Name,
				QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q.Type, q.Value)},
			})
		}
	}
	return out, "", ""
}

// pathMatch sets out's path specifier from an HTTPRoute path match (nil:
// prefix "/", the API's default).
//
// A PathPrefix matches whole segments ("/foo" matches "/foo" and
// "/foo/bar", not "/foobar"; a trailing "/" in the value is ignored). Envoy
// says that with path_separated_prefix; grpc-go NACKs the whole
// RouteConfiguration for it, so gRPC clients get the same set of paths as a
// regular expression, ^PREFIX(/.*)?$.
func pathMatch(out *routev3.RouteMatch, p *model.PathMatch, f Flavour) string {
	if p == nil {
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
		return ""
	}
	switch p.Type {
	case model.MatchExact:
		out.PathSpecifier = &routev3.RouteMatch_Path{Path: p.Value}
	case model.MatchPathPrefix, "":
		v := strings.TrimRight(p.Value, "/")
		switch {
		case v == "":
			out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
		case f == FlavourEnvoy:
			out.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: v}
		default:
			out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regex("^" + regexp.QuoteMeta(v) + "(/.*)?$")}
		}
	case model.MatchRegularExpression:
		if _, err := regexp.Compile(p.Value); err != nil {
			return fmt.Sprintf("path: invalid regular expression %q; match left out", p.Value)
		}
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regex(p.Value)}
	default:
		return fmt.Sprintf("path: unknown match type %q; match left out", p.Type)
	}
	return ""
}

// grpcMethodMatch sets out's path specifier from a GRPCRoute method match
// (nil: every method). A gRPC call's path is /SERVICE/METHOD.
func grpcMethodMatch(out *routev3.RouteMatch, m *model.GRPCMethodMatch) string {
	if m == nil || (m.Service == "" && m.Method == "") {
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
		return ""
	}
	switch m.Type {
	case model.MatchExact, "":
		if strings.Contains(m.Service, "/") || strings.Contains(m.Method, "/") {
			return fmt.Sprintf("method: %q/%q: an exact service or method may not contain '/'; match left out", m.Service, m.Method)
		}
		switch {
		case m.Method == "":
			out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/" + m.Service + "/"}
		case m.Service == "":
			out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regex("^/[^/]+/" + regexp.QuoteMeta(m.Method) + "$")}
		default:
			out.PathSpecifier = &routev3.RouteMatch_Path{Path: "/" + m.Service + "/" + m.Method}
		}
	case model.MatchRegularExpression:
		svc, method := "[^/]+", "[^/]+"
		for _, part := range []*string{&m.Service, &m.Method} {
			if *part == "" {
				continue
			}
			if _, err := regexp.Compile(*part); err != nil {
				return fmt.Sprintf("method: invalid regular expression %q; match left out", *part)
			}
		}
		if m.Service != "" {
			svc = "(?:" + m.Service + ")"
		}
		if m.Method != "" {
			method = "(?:" + m.Method + ")"
		}
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regex("^/" + svc + "/" + method + "$")}
	default:
		return fmt.Sprintf("method: unknown match type %q; match left out", m.Type)
	}
	return ""
}

// headerMatcher matches header name. gRPC clients get the deprecated
// exact_match and safe_regex_match fields: C-core 1.51 NACKs the whole
// RouteConfiguration for string_match ("Invalid route header matcher
// specified", TestMeshRouteMatches), and grpc-go and grpc-js-xds read both.
func headerMatcher(name, typ, value string, f Flavour) *routev3.HeaderMatcher {
	if f == FlavourGRPC {
		if typ == model.MatchRegularExpression {
			//nolint:staticcheck // deprecated, but the only regex matcher C-core 1.51 reads
			return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: regex(value)}}
		}
		//nolint:staticcheck // deprecated, but the only exact matcher C-core 1.51 reads
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: value}}
	}
	return &routev3.HeaderMatcher{
		Name:                 name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(typ, value)},
	}
}

func stringMatcher(typ, value string) *matcherv3.StringMatcher {
	if typ == model.MatchRegularExpression {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regex(value)}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}}
}

// regex is a RE2 matcher (Envoy's and gRPC's only engine; Go's regexp is
// RE2 too, which is how the translator checks a pattern compiles).
func regex(pattern string) *matcherv3.RegexMatcher {
	return &matcherv3.RegexMatcher{Regex: pattern}
}
