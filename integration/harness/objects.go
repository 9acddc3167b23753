package harness

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Labels and annotation the EndpointSlice controller sets on every slice.
const (
	ManagedByController  = "endpointslice-controller.k8s.io"
	lastChangeAnnotation = "endpoints.kubernetes.io/last-change-trigger-time"
	testNameAnnotation   = "switchboard.test/name"
)

// EndpointState is one of the condition sets the EndpointSlice controller
// writes for a pod. The zero value is Ready.
type EndpointState int

const (
	// Ready: ready, serving, not terminating (a ready pod).
	Ready EndpointState = iota
	// NotReady: not ready, not serving, not terminating (a pod failing its
	// readiness probe).
	NotReady
	// Terminating: not ready, still serving, terminating (a deleted pod
	// that still passes its readiness probe).
	Terminating
	// TerminatingNotServing: not ready, not serving, terminating.
	TerminatingNotServing
)

// conditions returns the EndpointConditions the controller writes for s;
// it always sets all three.
func (s EndpointState) conditions() discoveryv1.EndpointConditions {
	ready, serving, terminating := false, false, false
	switch s {
	case Ready:
		ready, serving = true, true
	case NotReady:
	case Terminating:
		serving, terminating = true, true
	case TerminatingNotServing:
		terminating = true
	}
	return discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating}
}

// Endpoint is one pod's entry in an EndpointSlice.
type Endpoint struct {
	// Address is an IPv4 address; backends listen in BackendCIDR.
	Address string
	State   EndpointState
	// Zone is the topology zone of the pod's node; empty means none.
	Zone string
	// NodeName is the pod's node; empty means none.
	NodeName string
	// Pod names the pod in targetRef; empty means "<service>-<a-b-c-d>".
	Pod string
}

// Port is one port of a Service, and of its slices.
type Port struct {
	// Name may be empty for a Service with one port.
	Name string
	Port int32
	// Protocol defaults to TCP.
	Protocol corev1.Protocol
	// AppProtocol is copied to the slice when not empty (e.g. "grpc").
	AppProtocol string
}

// Slice describes an EndpointSlice of a Service.
type Slice struct {
	Namespace string
	Service   string
	// Name is the slice's name. Empty on create means generated, as the
	// controller does ("<service>-xxxxx"); required on update.
	Name      string
	Ports     []Port
	Endpoints []Endpoint
}

// TestNamespace creates a namespace whose name is unique and derived from the
// test's name, annotated with the full test name, and returns its name. It
// fails the test on error. The namespace is never deleted: without the
// namespace controller, a deleted namespace never finishes terminating.
func TestNamespace(t testing.TB, c kubernetes.Interface) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: namespacePrefix(t.Name()),
		Annotations:  map[string]string{testNameAnnotation: t.Name()},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace for %s: %v", t.Name(), err)
	}
	return ns.Name
}

// namespacePrefix turns a test name into a DNS label prefix: "t-", the name
// lowercased with runs of other characters turned into "-", at most 40
// characters, and a trailing "-" for the generated suffix.
func namespacePrefix(testName string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(testName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 40 {
		name = strings.TrimRight(name[:40], "-")
	}
	return "t-" + name + "-"
}

// CreateService creates a ClusterIP Service with the given ports (target
// port = port) and selector app=<name>, as a Deployment's Service would be.
func CreateService(ctx context.Context, c kubernetes.Interface, namespace, name string, ports []Port) (*corev1.Service, error) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{"app": name},
		},
	}
	for _, p := range ports {
		sp := corev1.ServicePort{Name: p.Name, Port: p.Port, Protocol: protocol(p), TargetPort: intstr.FromInt32(p.Port)}
		if p.AppProtocol != "" {
			sp.AppProtocol = &p.AppProtocol
		}
		svc.Spec.Ports = append(svc.Spec.Ports, sp)
	}
	created, err := c.CoreV1().Services(namespace).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create service %s/%s: %w", namespace, name, err)
	}
	return created, nil
}

// NewEndpointSlice builds the EndpointSlice the controller would write for
// s: generateName "<service>-" (when s.Name is empty), labels
// kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by plus
// the Service's own labels, a controller owner reference to the Service,
// addressType IPv4, all three conditions on every endpoint, a Pod targetRef,
// and ports with name, port and protocol always set. svc may be nil, for a
// slice whose Service does not exist: then there are no owner reference and
// no copied labels.
func NewEndpointSlice(s Slice, svc *corev1.Service) *discoveryv1.EndpointSlice {
	labels := map[string]string{}
	var owners []metav1.OwnerReference
	if svc != nil {
		for k, v := range svc.Labels {
			labels[k] = v
		}
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			labels[corev1.IsHeadlessService] = ""
		}
		owners = []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))}
	}
	labels[discoveryv1.LabelServiceName] = s.Service
	labels[discoveryv1.LabelManagedBy] = ManagedByController

	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       s.Namespace,
			Name:            s.Name,
			Labels:          labels,
			Annotations:     map[string]string{lastChangeAnnotation: time.Now().UTC().Format(time.RFC3339Nano)},
			OwnerReferences: owners,
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	if s.Name == "" {
		es.GenerateName = s.Service + "-"
	}
	setSliceContents(es, s)
	return es
}

// setSliceContents writes s's ports and endpoints into es.
func setSliceContents(es *discoveryv1.EndpointSlice, s Slice) {
	es.Ports = make([]discoveryv1.EndpointPort, 0, len(s.Ports))
	for _, p := range s.Ports {
		ep := discoveryv1.EndpointPort{Name: ptr(p.Name), Port: ptr(p.Port), Protocol: ptr(protocol(p))}
		if p.AppProtocol != "" {
			ep.AppProtocol = ptr(p.AppProtocol)
		}
		es.Ports = append(es.Ports, ep)
	}
	es.Endpoints = make([]discoveryv1.Endpoint, 0, len(s.Endpoints))
	for _, e := range s.Endpoints {
		pod := e.Pod
		if pod == "" {
			pod = s.Service + "-" + strings.ReplaceAll(e.Address, ".", "-")
		}
		ep := discoveryv1.Endpoint{
			Addresses:  []string{e.Address},
			Conditions: e.State.conditions(),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: s.Namespace, Name: pod},
		}
		if e.Zone != "" {
			ep.Zone = ptr(e.Zone)
		}
		if e.NodeName != "" {
			ep.NodeName = ptr(e.NodeName)
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
}

// CreateEndpointSlice creates the slice NewEndpointSlice builds, owned by
// the Service s.Service when it exists, and returns it as stored.
func CreateEndpointSlice(ctx context.Context, c kubernetes.Interface, s Slice) (*discoveryv1.EndpointSlice, error) {
	svc, err := c.CoreV1().Services(s.Namespace).Get(ctx, s.Service, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		svc = nil
	case err != nil:
		return nil, fmt.Errorf("create endpointslice for %s/%s: %w", s.Namespace, s.Service, err)
	}
	es, err := c.DiscoveryV1().EndpointSlices(s.Namespace).Create(ctx, NewEndpointSlice(s, svc), metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create endpointslice for %s/%s: %w", s.Namespace, s.Service, err)
	}
	return es, nil
}

// UpdateEndpointSlice replaces the ports and endpoints of slice s.Name with
// s's, as the controller does when pods change, refreshing the
// last-change-trigger-time annotation and retrying on conflicts. It returns
// the slice as stored.
func UpdateEndpointSlice(ctx context.Context, c kubernetes.Interface, s Slice) (*discoveryv1.EndpointSlice, error) {
	if s.Name == "" {
		return nil, fmt.Errorf("update endpointslice for %s/%s: Slice.Name is empty", s.Namespace, s.Service)
	}
	api := c.DiscoveryV1().EndpointSlices(s.Namespace)
	var updated *discoveryv1.EndpointSlice
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		es, err := api.Get(ctx, s.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		setSliceContents(es, s)
		if es.Annotations == nil {
			es.Annotations = map[string]string{}
		}
		es.Annotations[lastChangeAnnotation] = time.Now().UTC().Format(time.RFC3339Nano)
		updated, err = api.Update(ctx, es, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update endpointslice %s/%s: %w", s.Namespace, s.Name, err)
	}
	return updated, nil
}

// DeleteEndpointSlice deletes the named slice.
func DeleteEndpointSlice(ctx context.Context, c kubernetes.Interface, namespace, name string) error {
	if err := c.DiscoveryV1().EndpointSlices(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete endpointslice %s/%s: %w", namespace, name, err)
	}
	return nil
}

// protocol returns p's protocol, TCP when unset.
func protocol(p Port) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}

// ptr returns a pointer to a copy of v.
func ptr[T any](v T) *T { return &v }
