package watcher

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/switchboard-xds/switchboard/internal/poll"
	"github.com/switchboard-xds/switchboard/model"
)

// Builders for test objects. They return fresh objects on every call, so a
// test can mutate what it gets.

func newSvc(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: ports},
	}
}

func svcPortNum(name string, port, target int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromInt32(target)}
}

func svcPortNamed(name string, port int32, target string) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromString(target)}
}

func newSlice(ns, name, svc string, family discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name},
		AddressType: family,
		Ports:       ports,
		Endpoints:   eps,
	}
	if svc != "" {
		es.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
	}
	return es
}

func slicePorts(nameAndPort ...any) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for i := 0; i < len(nameAndPort); i += 2 {
		name := nameAndPort[i].(string)
		port := int32(nameAndPort[i+1].(int))
		out = append(out, discoveryv1.EndpointPort{Name: &name, Port: &port})
	}
	return out
}

func newEp(addr string, mods ...func(*discoveryv1.Endpoint)) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{addr}}
	for _, m := range mods {
		m(&e)
	}
	return e
}

func ptr[T any](v T) *T { return &v }

func ready(v bool) func(*discoveryv1.Endpoint) {
	return func(e *discoveryv1.Endpoint) { e.Conditions.Ready = ptr(v) }
}

func serving(v bool) func(*discoveryv1.Endpoint) {
	return func(e *discoveryv1.Endpoint) { e.Conditions.Serving = ptr(v) }
}

func terminating(v bool) func(*discoveryv1.Endpoint) {
	return func(e *discoveryv1.Endpoint) { e.Conditions.Terminating = ptr(v) }
}

func pod(name string) func(*discoveryv1.Endpoint) {
	return func(e *discoveryv1.Endpoint) {
		e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: name}
	}
}

func zone(z string, hints ...string) func(*discoveryv1.Endpoint) {
	return func(e *discoveryv1.Endpoint) {
		e.Zone = ptr(z)
		if len(hints) > 0 {
			e.Hints = &discoveryv1.EndpointHints{}
			for _, h := range hints {
				e.Hints.ForZones = append(e.Hints.ForZones, discoveryv1.ForZone{Name: h})
			}
		}
	}
}

// readyEp is the view of a plain ready endpoint.
func readyEp(port int32, addrs ...string) model.Endpoint {
	return model.Endpoint{Addresses: addrs, Port: port, Ready: true, Serving: true}
}

// tcp is the view of a TCP Service port.
func tcp(name string, port, target int32, eps ...model.Endpoint) model.Port {
	return model.Port{Name: name, Port: port, Protocol: "TCP", TargetPort: target, Endpoints: eps}
}

func key(ns, name string) model.ServiceKey { return model.ServiceKey{Namespace: ns, Name: name} }

// assertView fails the test unless got equals want, printing both as JSON.
func assertView(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\ngot  %s\nwant %s", what, dump(got), dump(want))
	}
}

// dump renders a view (or a map keyed by model.ServiceKey) as indented JSON.
func dump(v any) string {
	if m, ok := v.(map[model.ServiceKey]*model.Service); ok {
		byName := map[string]*model.Service{}
		for k, s := range m {
			byName[k.String()] = s
		}
		v = byName
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 10*time.Second, what, cond)
}
