package integration

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// checkDeployment asserts the settings of the rendered Deployment that the
// install promises: two replicas spread over zones and nodes, probes on the
// admin port, resource bounds, and a container that runs as non-root with a
// read-only root, no capabilities, no privilege escalation and the runtime's
// seccomp profile.
func checkDeployment(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	if pod.ServiceAccountName != "switchboard" {
		t.Errorf("serviceAccountName = %q, want switchboard (the one rbac.yaml binds)", pod.ServiceAccountName)
	}
	var keys []string
	for _, c := range pod.TopologySpreadConstraints {
		keys = append(keys, c.TopologyKey)
	}
	for _, k := range []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"} {
		if !slices.Contains(keys, k) {
			t.Errorf("no topology spread constraint on %s (have %q)", k, keys)
		}
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	adminPort := int32(0)
	for _, p := range c.Ports {
		if p.Name == "admin" {
			adminPort = p.ContainerPort
		}
	}
	if adminPort != 9090 {
		t.Errorf("container port admin = %d, want 9090", adminPort)
	}
	for name, probe := range map[string]struct {
		p    *corev1.Probe
		path string
	}{"readinessProbe": {c.ReadinessProbe, "/readyz"}, "livenessProbe": {c.LivenessProbe, "/healthz"}} {
		switch {
		case probe.p == nil || probe.p.HTTPGet == nil:
			t.Errorf("%s: no HTTP probe", name)
		case probe.p.HTTPGet.Path != probe.path || (probe.p.HTTPGet.Port != intstr.FromString("admin") && probe.p.HTTPGet.Port != intstr.FromInt32(9090)):
			t.Errorf("%s: GET %s on %s, want %s on the admin port", name, probe.p.HTTPGet.Path, probe.p.HTTPGet.Port.String(), probe.path)
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
	}

	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("container has no securityContext")
	}
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Error("runAsNonRoot is not true (container or pod)")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities = %+v, want drop [ALL] and no add", sc.Capabilities)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile = %+v, want RuntimeDefault (container or pod)", seccomp)
	}
}

// checkService asserts the Service's two ports: xDS on 18000 as gRPC and
// metrics on 9090.
func checkService(t *testing.T, svc *corev1.Service) {
	t.Helper()
	ports := map[string]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p
	}
	if p := ports["xds"]; p.Port != 18000 || p.AppProtocol == nil || *p.AppProtocol != "grpc" {
		t.Errorf("Service port xds = %+v, want 18000 with appProtocol grpc", p)
	}
	if p := ports["metrics"]; p.Port != 9090 {
		t.Errorf("Service port metrics = %+v, want 9090", p)
	}
}

// checkServiceMonitorPort asserts that the ServiceMonitor scrapes a port
// the Service has, by name.
func checkServiceMonitorPort(t *testing.T, objs []*unstructured.Unstructured, svc *corev1.Service) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != "ServiceMonitor" {
			continue
		}
		eps, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
		if len(eps) == 0 {
			t.Errorf("ServiceMonitor %s has no endpoints", o.GetName())
		}
		for _, ep := range eps {
			port, _ := ep.(map[string]any)["port"].(string)
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == port }) {
				t.Errorf("ServiceMonitor %s scrapes port %q, which Service %s does not have", o.GetName(), port, svc.Name)
			}
		}
		return
	}
	t.Error("no ServiceMonitor in the overlay")
}
