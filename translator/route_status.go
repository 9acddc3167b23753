package translator

import (
	"fmt"

	"github.com/switchboard-xds/switchboard/model"
)

// RouteStatus returns the status of route r for each of its Service
// parents, given the world mesh (every Service, every grant):
//
//   - Accepted: true when the parent Service exists and the parentRef names
//     a port it serves (or no port); else false, NoMatchingParent.
//   - ResolvedRefs: true when every backendRef of every rule resolves (see
//     backendCluster); else false with the reason of the first that does
//     not (BackendNotFound, RefNotPermitted, InvalidKind) and its message.
//   - PartiallyInvalid: when RouteRules reports a feature of the route
//     that gRPC clients or Envoy do not get as written on a port of the
//     parent (UnsupportedValue, with the first such diagnostic).
//
// Parents that are not Services are left out: another controller owns them.
func RouteStatus(opts Options, r *model.MeshRoute, mesh *Mesh) model.RouteStatus {
	out := model.RouteStatus{Route: r.Key, Generation: r.Generation}
	refs := model.Condition{Status: true, Reason: model.ReasonResolvedRefs, Message: "every backendRef resolves"}
	domain := opts.domain()
	for _, rule := range r.Rules {
		for _, b := range rule.Backends {
			if _, reason := backendCluster(domain, mesh, r, b); reason != "" {
				refs = model.Condition{Reason: refReason(mesh, r, b), Message: reason}
				break
			}
		}
		if !refs.Status {
			break
		}
	}
	for _, p := range r.Parents {
		key, ok := p.Service()
		if !ok {
			continue
		}
		ps := model.ParentStatus{Parent: p, ResolvedRefs: refs}
		ps.Accepted = accepted(mesh.Services[key], p)
		if ps.Accepted.Status {
			ps.PartiallyInvalid = unsupported(domain, mesh, r, mesh.Services[key])
		}
		out.Parents = append(out.Parents, ps)
	}
	return out
}

func accepted(svc *model.Service, p model.ParentRef) model.Condition {
	if svc == nil {
		return model.Condition{Reason: model.ReasonNoMatchingParent, Message: fmt.Sprintf("Service %s/%s not found", p.Namespace, p.Name)}
	}
	if refusal(svc) != "" {
		return model.Condition{Reason: model.ReasonNoMatchingParent, Message: "the Service is not served: " + refusal(svc)}
	}
	tcp, _, _ := servedPorts(svc, func(string, string, ...any) Diagnostic { return Diagnostic{} })
	for _, sp := range tcp {
		if (p.Port == 0 || p.Port == sp.Port) && (p.SectionName == "" || p.SectionName == sp.Name) {
			return model.Condition{Status: true, Reason: model.ReasonAccepted, Message: "attached to the Service"}
		}
	}
	return model.Condition{Reason: model.ReasonNoMatchingParent, Message: fmt.Sprintf("the Service serves no TCP port matching port %d section %q", p.Port, p.SectionName)}
}

// unsupported is the PartiallyInvalid condition of r on Service svc: the
// feature diagnostics of r's rules on each port of svc it attaches to,
// for each client flavour; nil when there are none.
func unsupported(domain string, mesh *Mesh, r *model.MeshRoute, svc *model.Service) *model.Condition {
	var first string
	n := 0
	tcp, _, _ := servedPorts(svc, func(string, string, ...any) Diagnostic { return Diagnostic{} })
	for _, p := range tcp {
		if !attaches(r, svc.Key, p) {
			continue
		}
		in := RuleInput{Domain: domain, Service: svc.Key, Port: portLabel(p), Canonical: CanonicalName(domain, svc.Key, p.Port), Mesh: mesh}
		for _, f := range []Flavour{FlavourGRPC, FlavourEnvoy} {
			for _, d := range RouteRules(in, []*model.MeshRoute{r}, f).Diagnostics {
				if d.Feature == "" {
					continue
				}
				if n == 0 {
					first = f.String() + " clients: " + d.Reason
				}
				n++
			}
		}
		break // the rules are the same on every port
	}
	if n == 0 {
		return nil
	}
	msg := first
	if n > 1 {
		msg += fmt.Sprintf(" (and %d more; see /debug/diagnostics)", n-1)
	}
	return &model.Condition{Status: true, Reason: model.ReasonUnsupportedValue, Message: msg}
}

// refReason is the ResolvedRefs reason for backend b of r, which does not
// resolve.
func refReason(mesh *Mesh, r *model.MeshRoute, b model.BackendRef) string {
	key, ok := b.Service()
	switch {
	case !ok:
		return model.ReasonInvalidKind
	case key.Namespace != r.Key.Namespace && !isParent(r, key) && !granted(mesh.Grants, r, key):
		return model.ReasonRefNotPermitted
	}
	return model.ReasonBackendNotFound
}
