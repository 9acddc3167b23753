package watcher

import (
	"errors"
	"fmt"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/switchboard-xds/switchboard/model"
)

// This file trims Gateway API routes and ReferenceGrants to their model
// views, applying the defaults the CRDs declare (so a manifest read from a
// folder reads as the API server would have stored it).

// trimHTTPRoute returns the view of r, or why r is not a valid route.
func trimHTTPRoute(r *gwv1.HTTPRoute) (*model.MeshRoute, error) {
	out := &model.MeshRoute{
		Key:        model.RouteKey{Kind: model.KindHTTPRoute, Namespace: r.Namespace, Name: r.Name},
		Generation: r.Generation,
		Created:    r.CreationTimestamp.UTC(),
		Parents:    parents(r.Namespace, r.Spec.ParentRefs),
	}
	var errs []error
	for i, rule := range r.Spec.Rules {
		mr := model.RouteRule{Name: deref((*string)(rule.Name))}
		for _, m := range rule.Matches {
			mm := model.RouteMatch{Method: string(deref(m.Method))}
			if m.Path != nil {
				mm.Path = &model.PathMatch{Type: string(deref(m.Path.Type)), Value: deref(m.Path.Value)}
				if mm.Path.Type == "" {
					mm.Path.Type = model.MatchPathPrefix
				}
				if m.Path.Value == nil {
					mm.Path.Value = "/"
				}
			} else {
				mm.Path = &model.PathMatch{Type: model.MatchPathPrefix, Value: "/"}
			}
			for _, h := range m.Headers {
				mm.Headers = append(mm.Headers, valueMatch(string(deref(h.Type)), string(h.Name), h.Value))
			}
			for _, q := range m.QueryParams {
				mm.QueryParams = append(mm.QueryParams, valueMatch(string(deref(q.Type)), string(q.Name), q.Value))
			}
			mr.Matches = append(mr.Matches, mm)
		}
		for _, f := range rule.Filters {
			mr.Filters = append(mr.Filters, httpFilter(r.Namespace, f))
		}
		for _, b := range rule.BackendRefs {
			mb := backendRef(r.Namespace, b.BackendRef)
			for _, f := range b.Filters {
				mb.Filters = append(mb.Filters, httpFilter(r.Namespace, f))
			}
			mr.Backends = append(mr.Backends, mb)
		}
		if t := rule.Timeouts; t != nil {
			var err error
			if mr.RequestTimeout, err = duration(t.Request); err != nil {
				errs = append(errs, fmt.Errorf("spec.rules[%d].timeouts.request: %w", i, err))
			}
			if mr.BackendTimeout, err = duration(t.BackendRequest); err != nil {
				errs = append(errs, fmt.Errorf("spec.rules[%d].timeouts.backendRequest: %w", i, err))
			}
		}
		if rt := rule.Retry; rt != nil {
			mrt := &model.RouteRetry{Attempts: deref(rt.Attempts)}
			for _, c := range rt.Codes {
				mrt.Codes = append(mrt.Codes, int(c))
			}
			var err error
			if mrt.Backoff, err = duration(rt.Backoff); err != nil {
				errs = append(errs, fmt.Errorf("spec.rules[%d].retry.backoff: %w", i, err))
			}
			mr.Retry = mrt
		}
		out.Rules = append(out.Rules, mr)
	}
	return out, errors.Join(errs...)
}

// trimGRPCRoute returns the view of r.
func trimGRPCRoute(r *gwv1.GRPCRoute) *model.MeshRoute {
	out := &model.MeshRoute{
		Key:        model.RouteKey{Kind: model.KindGRPCRoute, Namespace: r.Namespace, Name: r.Name},
		Generation: r.Generation,
		Created:    r.CreationTimestamp.UTC(),
		Parents:    parents(r.Namespace, r.Spec.ParentRefs),
	}
	for _, rule := range r.Spec.Rules {
		mr := model.RouteRule{Name: deref((*string)(rule.Name))}
		for _, m := range rule.Matches {
			var mm model.RouteMatch
			if m.Method != nil {
				mm.GRPC = &model.GRPCMethodMatch{Type: string(deref(m.Method.Type)), Service: deref(m.Method.Service), Method: deref(m.Method.Method)}
				if mm.GRPC.Type == "" {
					mm.GRPC.Type = model.MatchExact
				}
			}
			for _, h := range m.Headers {
				mm.Headers = append(mm.Headers, valueMatch(string(deref(h.Type)), string(h.Name), h.Value))
			}
			mr.Matches = append(mr.Matches, mm)
		}
		for _, f := range rule.Filters {
			mr.Filters = append(mr.Filters, grpcFilter(r.Namespace, f))
		}
		for _, b := range rule.BackendRefs {
			mb := backendRef(r.Namespace, b.BackendRef)
			for _, f := range b.Filters {
				mb.Filters = append(mb.Filters, grpcFilter(r.Namespace, f))
			}
			mr.Backends = append(mr.Backends, mb)
		}
		out.Rules = append(out.Rules, mr)
	}
	return out
}

// trimGrant returns the view of g.
func trimGrant(g *gwv1.ReferenceGrant) *model.ReferenceGrant {
	out := &model.ReferenceGrant{Key: model.GrantKey{Namespace: g.Namespace, Name: g.Name}}
	for _, f := range g.Spec.From {
		out.From = append(out.From, model.GrantFrom{Group: string(f.Group), Kind: string(f.Kind), Namespace: string(f.Namespace)})
	}
	for _, t := range g.Spec.To {
		out.To = append(out.To, model.GrantTo{Group: string(t.Group), Kind: string(t.Kind), Name: string(deref(t.Name))})
	}
	return out
}

func parents(ns string, refs []gwv1.ParentReference) []model.ParentRef {
	out := make([]model.ParentRef, 0, len(refs))
	for _, p := range refs {
		mp := model.ParentRef{
			Group:       "gateway.networking.k8s.io",
			Kind:        "Gateway",
			Namespace:   ns,
			Name:        string(p.Name),
			SectionName: string(deref(p.SectionName)),
			Port:        deref(p.Port),
		}
		if p.Group != nil {
			mp.Group = string(*p.Group)
		}
		if p.Kind != nil {
			mp.Kind = string(*p.Kind)
		}
		if p.Namespace != nil {
			mp.Namespace = string(*p.Namespace)
		}
		out = append(out, mp)
	}
	return out
}

func backendRef(ns string, b gwv1.BackendRef) model.BackendRef {
	out := backendObject(ns, b.BackendObjectReference)
	out.Weight = 1
	if b.Weight != nil {
		out.Weight = *b.Weight
	}
	return out
}

func backendObject(ns string, b gwv1.BackendObjectReference) model.BackendRef {
	out := model.BackendRef{Kind: "Service", Namespace: ns, Name: string(b.Name), Port: deref(b.Port)}
	if b.Group != nil {
		out.Group = string(*b.Group)
	}
	if b.Kind != nil {
		out.Kind = string(*b.Kind)
	}
	if b.Namespace != nil {
		out.Namespace = string(*b.Namespace)
	}
	return out
}

func valueMatch(typ, name, value string) model.ValueMatch {
	if typ == "" {
		typ = model.MatchExact
	}
	return model.ValueMatch{Type: typ, Name: name, Value: value}
}

func httpFilter(ns string, f gwv1.HTTPRouteFilter) model.RouteFilter {
	out := model.RouteFilter{
		Type:            string(f.Type),
		RequestHeaders:  headerModifier(f.RequestHeaderModifier),
		ResponseHeaders: headerModifier(f.ResponseHeaderModifier),
		Mirror:          mirror(ns, f.RequestMirror),
	}
	if rd := f.RequestRedirect; rd != nil {
		out.Redirect = &model.Redirect{
			Scheme:     deref(rd.Scheme),
			Hostname:   string(deref(rd.Hostname)),
			Path:       pathModifier(rd.Path),
			Port:       deref(rd.Port),
			StatusCode: deref(rd.StatusCode),
		}
	}
	if rw := f.URLRewrite; rw != nil {
		out.Rewrite = &model.Rewrite{Hostname: string(deref(rw.Hostname)), Path: pathModifier(rw.Path)}
	}
	return out
}

func grpcFilter(ns string, f gwv1.GRPCRouteFilter) model.RouteFilter {
	return model.RouteFilter{
		Type:            string(f.Type),
		RequestHeaders:  headerModifier(f.RequestHeaderModifier),
		ResponseHeaders: headerModifier(f.ResponseHeaderModifier),
		Mirror:          mirror(ns, f.RequestMirror),
	}
}

func headerModifier(h *gwv1.HTTPHeaderFilter) *model.HeaderModifier {
	if h == nil {
		return nil
	}
	out := &model.HeaderModifier{Remove: h.Remove}
	for _, s := range h.Set {
		out.Set = append(out.Set, model.Header{Name: string(s.Name), Value: s.Value})
	}
	for _, a := range h.Add {
		out.Add = append(out.Add, model.Header{Name: string(a.Name), Value: a.Value})
	}
	return out
}

func pathModifier(p *gwv1.HTTPPathModifier) *model.PathModifier {
	if p == nil {
		return nil
	}
	out := &model.PathModifier{Type: string(p.Type)}
	if p.ReplaceFullPath != nil {
		out.Value = *p.ReplaceFullPath
	}
	if p.ReplacePrefixMatch != nil {
		out.Value = *p.ReplacePrefixMatch
	}
	return out
}

func mirror(ns string, m *gwv1.HTTPRequestMirrorFilter) *model.Mirror {
	if m == nil {
		return nil
	}
	out := &model.Mirror{Backend: backendObject(ns, m.BackendRef), Percent: 100}
	switch {
	case m.Percent != nil:
		out.Percent = *m.Percent
	case m.Fraction != nil:
		den := int32(100)
		if m.Fraction.Denominator != nil && *m.Fraction.Denominator > 0 {
			den = *m.Fraction.Denominator
		}
		out.Percent = int32(int64(m.Fraction.Numerator) * 100 / int64(den))
	}
	return out
}

// duration parses a Gateway API duration ("" is 0).
func duration(d *gwv1.Duration) (time.Duration, error) {
	if d == nil || *d == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: %w", *d, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative duration %q", *d)
	}
	return v, nil
}
