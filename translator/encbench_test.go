package translator

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/watcher"
)

func storeView(b *testing.B, n int, zones int, rollout bool) *model.Service {
	st, err := watcher.NewStore(watcher.Options{})
	if err != nil {
		b.Fatal(err)
	}
	st.UpsertService(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "grpc", Port: 8080, Protocol: "TCP"}}, ClusterIP: "10.96.0.10"}})
	for s := 0; s*100 < n; s++ {
		es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("svc-%d", s), Labels: map[string]string{discoveryv1.LabelServiceName: "svc"}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(int32(8080)), Protocol: ptr.To(corev1.ProtocolTCP)}}}
		for j := s * 100; j < min(n, (s+1)*100); j++ {
			ready := true
			term := false
			if rollout && j%4 == 0 {
				ready, term = false, true
			}
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.244.%d.%d", j/200, 1+j%200)},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(true), Terminating: ptr.To(term)},
				Zone:       ptr.To(fmt.Sprintf("zone-%c", 'a'+j%zones)), NodeName: ptr.To(fmt.Sprintf("node-%d", j%20))})
		}
		st.UpsertSlice(es)
	}
	return st.Service(model.ServiceKey{Namespace: "ns", Name: "svc"})
}

func BenchmarkEncodeCLA(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		for _, shape := range []string{"zones2", "rollout"} {
			svc := storeView(b, n, 2, shape == "rollout")
			eps := svc.Ports[0].Endpoints
			if usualView(eps) {
				b.Run(fmt.Sprintf("n=%d/%s/view-to-wire", n, shape), func(b *testing.B) {
					for b.Loop() {
						sortedWire("c", eps)
					}
				})
			}
			b.Run(fmt.Sprintf("n=%d/%s/msg+protobuf-go", n, shape), func(b *testing.B) {
				for b.Loop() {
					cla, _ := loadAssignment("c", svc.Key, "grpc", eps)
					if _, err := deterministic.Marshal(cla); err != nil {
						b.Fatal(err)
					}
				}
			})
			if vtMarshal != nil {
				b.Run(fmt.Sprintf("n=%d/%s/msg+vtproto", n, shape), func(b *testing.B) {
					for b.Loop() {
						cla, _ := loadAssignment("c", svc.Key, "grpc", eps)
						if _, err := vtMarshal(cla); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			b.Run(fmt.Sprintf("n=%d/%s/service", n, shape), func(b *testing.B) {
				for b.Loop() {
					Service(Options{}, svc)
				}
			})
		}
	}
}

func BenchmarkEncodeSmall(b *testing.B) {
	const name = "greeter.demo.svc.cluster.local:50051"
	aliases := []string{"greeter.demo:50051", "greeter.demo.svc:50051"}
	b.Run("listener/hand", func(b *testing.B) {
		for b.Loop() {
			listenerWire(name, name)
		}
	})
	b.Run("listener/protobuf-go", func(b *testing.B) {
		for b.Loop() {
			encode(name, listenerOf(name, newHCM(name)))
		}
	})
	b.Run("route/hand", func(b *testing.B) {
		for b.Loop() {
			routeWire(policy{}, name, aliases, nil)
		}
	})
	b.Run("route/protobuf-go", func(b *testing.B) {
		for b.Loop() {
			encode(name, routeConfiguration(name, aliases, nil))
		}
	})
	b.Run("cluster/hand", func(b *testing.B) {
		for b.Loop() {
			clusterWire(policy{}, name, "")
		}
	})
	b.Run("cluster/protobuf-go", func(b *testing.B) {
		for b.Loop() {
			encode(name, edsCluster(name))
		}
	})
}

func BenchmarkEncodeSmallVT(b *testing.B) {
	const name = "greeter.demo.svc.cluster.local:50051"
	aliases := []string{"greeter.demo:50051", "greeter.demo.svc:50051"}
	for k, f := range vtSmall {
		b.Run(k+"/vtproto", func(b *testing.B) {
			for b.Loop() {
				if _, err := f(name, aliases); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
