// Package worldgen generates the Kubernetes objects of a synthetic cluster
// (Services and the EndpointSlices that the EndpointSlice controller writes
// for them) in a few named shapes, and runs them through the real
// watcher.Store to get the views that production feeds the translator.
//
// Benchmarks and the load tool take their input from here, so that they
// measure what production eats: endpoints in the Store's numeric address
// order (10.0.0.9 before 10.0.0.10, which string order puts the other way
// round), slices of at most 100 endpoints, conditions as the controller
// writes them, and the Store's own rules (duplicates, dual-stack merging,
// targetPort defaulting) applied rather than imitated.
//
// Everything is deterministic: the same Options give the same objects, byte
// for byte, in every process, so a driver and a server process can build the
// same world from a few numbers.
package worldgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/switchboard-xds/switchboard/model"
)

// Shape says what the endpoints of every generated Service look like.
type Shape struct {
	// Name names the shape in benchmark names; "" for Plain.
	Name string
	// Zones is how many zones ("zone-a", "zone-b", ...) the endpoints are
	// spread over, round robin; 0 means 1.
	Zones int
	// Rollout puts every Service in the middle of a rolling update: of each
	// eight endpoints one is an old pod that is terminating but still
	// serving, one a new pod that is not ready yet, and six are ready.
	Rollout bool
}

// The named shapes.
var (
	// Plain has every endpoint ready, in one zone.
	Plain = Shape{Zones: 1}
	// Zones2 has every endpoint ready, in two zones.
	Zones2 = Shape{Name: "zones2", Zones: 2}
	// Rollout is Zones2 in the middle of a rolling update (Shape.Rollout).
	Rollout = Shape{Name: "rollout", Zones: 2, Rollout: true}
)

// Options say which world to generate. Service i (counted from 0 over the
// whole world) always gets the same key, addresses and objects, so a world
// with First = k is a window of a larger one.
type Options struct {
	// Services is how many Services to generate.
	Services int
	// Endpoints is how many endpoints (pods) each Service has.
	Endpoints int
	// First is the index of the first generated Service.
	First int
	// Shape is the endpoints' shape; the zero value means Plain.
	Shape Shape
	// Key names Service i; nil means namespace "bench", name "svc-<i>".
	Key func(i int) model.ServiceKey
}

// The constants of every generated Service and slice.
const (
	// PortName and Port are the one port of every Service; its endpoints
	// listen on the same number (targetPort).
	PortName = "grpc"
	Port     = 8080
	// MaxSliceEndpoints is the EndpointSlice controller's default
	// --max-endpoints-per-slice.
	MaxSliceEndpoints = 100
	// managedBy is the controller's endpointslice.kubernetes.io/managed-by.
	managedBy = "endpointslice-controller.k8s.io"
	// nodesPerZone is how many Nodes each zone has.
	nodesPerZone = 20
	// hostsPerBlock addresses of each /24 are used (.1 to .250).
	hostsPerBlock = 250
	// worldBlocks is how many /24s 10.0.0.0/9 holds: the generated pods
	// live there, and ChangeAddress hands out 10.128.0.0/9.
	worldBlocks = 1 << 15
)

func (o Options) key(i int) model.ServiceKey {
	if o.Key != nil {
		return o.Key(i)
	}
	return model.ServiceKey{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i)}
}

func (o Options) zones() int { return max(o.Shape.Zones, 1) }

// blocks is how many /24s each Service's pods take.
func (o Options) blocks() int { return max(1, (o.Endpoints+hostsPerBlock-1)/hostsPerBlock) }

func (o Options) check() error {
	if o.Services < 0 || o.Endpoints < 0 || o.First < 0 {
		return errors.New("worldgen: negative Services, Endpoints or First")
	}
	if n := (o.First + o.Services) * o.blocks(); n > worldBlocks {
		return fmt.Errorf("worldgen: %d Services × %d endpoints need %d /24s, more than the %d of 10.0.0.0/9",
			o.First+o.Services, o.Endpoints, n, worldBlocks)
	}
	return nil
}

// podAddress is the address of pod slot j of Service i: Service i owns
// blocks() consecutive /24s of 10.0.0.0/9, slot j is host j%250+1 of block
// j/250, so a Service's slots in order are its addresses in numeric order.
func (o Options) podAddress(i, j int) netip.Addr {
	block := i*o.blocks() + j/hostsPerBlock
	return addr(10<<24 | uint32(block)<<8 | uint32(j%hostsPerBlock+1))
}

// ChangeAddress returns the k-th address of 10.128.0.0/9, which no generated
// pod has: a pod given ChangeAddress(k) for a k never used before is a pod
// that never existed.
func ChangeAddress(k int) netip.Addr { return addr(10<<24 | 1<<23 | uint32(k)&(1<<23-1)) }

func addr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// condition is what an endpoint's conditions say.
type condition struct{ ready, serving, terminating bool }

var (
	conditionReady       = condition{ready: true, serving: true}
	conditionTerminating = condition{serving: true, terminating: true}
	conditionStarting    = condition{}
)

// podCondition is the condition of pod slot j in this shape.
func (o Options) podCondition(j int) condition {
	if o.Shape.Rollout {
		switch j % 8 {
		case 0:
			return conditionTerminating
		case 4:
			return conditionStarting
		}
	}
	return conditionReady
}

// Objects returns the Services and their EndpointSlices, as an API server
// would list them: Services in index order, then every Service's slices.
func Objects(o Options) ([]*corev1.Service, []*discoveryv1.EndpointSlice, error) {
	if err := o.check(); err != nil {
		return nil, nil, err
	}
	svcs := make([]*corev1.Service, 0, o.Services)
	var slices []*discoveryv1.EndpointSlice
	for n := range o.Services {
		svc, ss := o.service(o.First + n)
		svcs = append(svcs, svc)
		slices = append(slices, ss...)
	}
	return svcs, slices, nil
}

// service returns Service i and its slices.
func (o Options) service(i int) (*corev1.Service, []*discoveryv1.EndpointSlice) {
	key := o.key(i)
	ip := addr(10<<24 | 96<<16 | uint32(i+1)) // 10.96.0.0/12, the usual service CIDR
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       key.Namespace,
			Name:            key.Name,
			UID:             uid("service", i, 0),
			ResourceVersion: "1",
			Labels:          map[string]string{"app": key.Name},
		},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeClusterIP,
			ClusterIP:             ip.String(),
			ClusterIPs:            []string{ip.String()},
			IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
			IPFamilyPolicy:        ptr.To(corev1.IPFamilyPolicySingleStack),
			InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
			SessionAffinity:       corev1.ServiceAffinityNone,
			Selector:              map[string]string{"app": key.Name},
			Ports: []corev1.ServicePort{{
				Name: PortName, Protocol: corev1.ProtocolTCP, Port: Port, TargetPort: intstr.FromInt32(Port),
			}},
		},
	}
	var slices []*discoveryv1.EndpointSlice
	for s := 0; s*MaxSliceEndpoints < o.Endpoints || (s == 0 && o.Endpoints == 0); s++ {
		es := o.slice(svc, i, s)
		for j := s * MaxSliceEndpoints; j < min(o.Endpoints, (s+1)*MaxSliceEndpoints); j++ {
			es.Endpoints = append(es.Endpoints, o.endpoint(key, i, j, pod{j: j}, o.podAddress(i, j), o.podCondition(j)))
		}
		slices = append(slices, es)
	}
	return svc, slices
}

// slice returns the empty slice s of Service i, with the metadata the
// controller gives it.
func (o Options) slice(svc *corev1.Service, i, s int) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       svc.Namespace,
			Name:            svc.Name + "-" + suffix("slice", i, s),
			GenerateName:    svc.Name + "-",
			UID:             uid("slice", i, s),
			ResourceVersion: "1",
			Generation:      1,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: svc.Name,
				discoveryv1.LabelManagedBy:   managedBy,
				"app":                        svc.Name, // the controller copies the Service's labels
			},
			Annotations: map[string]string{corev1.EndpointsLastChangeTriggerTime: "2026-01-01T00:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{{
			Name: ptr.To(PortName), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](Port),
		}},
	}
}

// pod identifies one pod: the one in slot j after gen replacements.
type pod struct{ j, gen int }

// endpoint returns the endpoint of one pod of Service i, in slot j.
func (o Options) endpoint(key model.ServiceKey, i, j int, p pod, a netip.Addr, c condition) discoveryv1.Endpoint {
	zone := j % o.zones()
	// A new pod of a rollout belongs to the new ReplicaSet.
	rs := suffix("replicaset", i, 0)
	if c == conditionStarting {
		rs = suffix("replicaset", i, 1)
	}
	name := fmt.Sprintf("%s-%s-%s", key.Name, rs, suffix("pod", i, p.j<<16|p.gen))
	return discoveryv1.Endpoint{
		Addresses: []string{a.String()},
		Conditions: discoveryv1.EndpointConditions{
			Ready: ptr.To(c.ready), Serving: ptr.To(c.serving), Terminating: ptr.To(c.terminating),
		},
		NodeName: ptr.To(fmt.Sprintf("node-%c-%d", 'a'+zone, (j/o.zones())%nodesPerZone)),
		Zone:     ptr.To(fmt.Sprintf("zone-%c", 'a'+zone)),
		TargetRef: &corev1.ObjectReference{
			Kind: "Pod", Namespace: key.Namespace, Name: name, UID: uid("pod", i, p.j<<16|p.gen),
		},
	}
}

// suffix is a 5-character name suffix in the alphabet of generateName.
func suffix(kind string, i, n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	h := hash(kind, i, n)
	var b [5]byte
	for k := range b {
		b[k] = alphabet[h%uint64(len(alphabet))]
		h /= uint64(len(alphabet))
	}
	return string(b[:])
}

// uid is a UUID-shaped UID.
func uid(kind string, i, n int) types.UID {
	h1, h2 := hash(kind, i, n), hash(kind+"/2", i, n)
	return types.UID(fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", h1>>32, h1>>16&0xffff, h1&0xffff, h2>>48, h2&0xffffffffffff))
}

func hash(kind string, i, n int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(kind))
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(i))
	binary.BigEndian.PutUint64(b[8:], uint64(n))
	h.Write(b[:])
	return h.Sum64()
}
