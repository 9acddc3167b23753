package translator

import (
	"fmt"
	"strconv"

	"github.com/switchboard-xds/switchboard/model"
)

// This file resolves the backendRefs of mesh route rules to the clusters
// of the Services they name.

// Mesh is what translating a Service needs beyond the Service itself to
// apply the mesh routes (GAMMA) that name it as parent. Its fields are
// read-only.
type Mesh struct {
	// Routes are candidate routes: those with a parentRef naming the
	// Service (and a port of it) apply, the others are ignored, so a
	// caller may pass more than the attached ones.
	Routes []*model.MeshRoute
	// Services are the Services that backendRefs may name, by key; a
	// backend missing here does not exist.
	Services map[model.ServiceKey]*model.Service
	// Grants are the ReferenceGrants of the world (any namespace); a
	// backendRef into another namespace resolves only with one of them.
	Grants []*model.ReferenceGrant
}

// gatewayGroup is the Gateway API group, the group of route kinds in a
// ReferenceGrant's from.
const gatewayGroup = "gateway.networking.k8s.io"

// backendCluster returns the name of the cluster that backend b of route
// r stands for, or "" and why it does not resolve. A backend resolves to
// a TCP port of a Service that Service translation serves (see refusal and
// servedPorts), in the route's namespace, the route's parent Service
// itself, or in a namespace whose ReferenceGrant lets routes of r's kind
// and namespace refer to it.
func backendCluster(domain string, mesh *Mesh, r *model.MeshRoute, b model.BackendRef) (cluster, reason string) {
	key, ok := b.Service()
	if !ok {
		return "", fmt.Sprintf("backendRef kind %q of group %q is not supported (only Services)", b.Kind, b.Group)
	}
	if b.Port == 0 {
		return "", fmt.Sprintf("backendRef %s has no port (a Service backend needs one)", key)
	}
	if key.Namespace != r.Key.Namespace && !isParent(r, key) && !granted(mesh.Grants, r, key) {
		return "", fmt.Sprintf("backendRef %s: no ReferenceGrant in namespace %s lets %ss of namespace %s refer to it",
			key, key.Namespace, r.Key.Kind, r.Key.Namespace)
	}
	svc := mesh.Services[key]
	if svc == nil {
		return "", fmt.Sprintf("backendRef %s: Service not found", key)
	}
	if why := refusal(svc); why != "" {
		return "", fmt.Sprintf("backendRef %s: the Service is not served (%s)", key, why)
	}
	tcp, _, _ := servedPorts(svc, func(string, string, ...any) Diagnostic { return Diagnostic{} })
	for _, p := range tcp {
		if p.Port == b.Port {
			return CanonicalName(domain, key, p.Port), ""
		}
	}
	return "", fmt.Sprintf("backendRef %s: the Service has no served TCP port %d", key, b.Port)
}

// isParent reports whether r has Service key as a parent: a consumer
// route may send to the Service it routes for without a ReferenceGrant
// (GEP-1426; the conformance suite's MeshConsumerRoute does), as its
// clients could reach that Service anyway.
func isParent(r *model.MeshRoute, key model.ServiceKey) bool {
	for _, p := range r.Parents {
		if k, ok := p.Service(); ok && k == key {
			return true
		}
	}
	return false
}

// granted reports whether a ReferenceGrant in to's namespace lets route r
// refer to Service to.
func granted(grants []*model.ReferenceGrant, r *model.MeshRoute, to model.ServiceKey) bool {
	for _, g := range grants {
		if g.Key.Namespace == to.Namespace && g.Allows(gatewayGroup, r.Key.Kind, r.Key.Namespace, "", "Service", to.Name) {
			return true
		}
	}
	return false
}

// backendLabel names a backendRef in diagnostics: "ns/name:port".
func backendLabel(b model.BackendRef) string {
	return b.Namespace + "/" + b.Name + ":" + strconv.Itoa(int(b.Port))
}
