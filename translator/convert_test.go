package translator

// A test-only conversion from Kubernetes YAML to the watcher's view, so that
// golden inputs are real manifests. The production conversion lives in
// watcher/; this one is deliberately small and literal.

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/switchboard-xds/switchboard/model"
)

// decodeManifests reads a multi-document YAML stream of Services and
// EndpointSlices. Any other kind is an error, so a typo in a test input
// cannot silently drop an object.
func decodeManifests(data []byte) ([]*corev1.Service, []*discoveryv1.EndpointSlice, error) {
	var svcs []*corev1.Service
	var eps []*discoveryv1.EndpointSlice
	for i, doc := range splitYAML(data) {
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", i, err)
		}
		switch meta.Kind {
		case "Service":
			s := &corev1.Service{}
			if err := yaml.UnmarshalStrict(doc, s); err != nil {
				return nil, nil, fmt.Errorf("document %d: %w", i, err)
			}
			svcs = append(svcs, s)
		case "EndpointSlice":
			s := &discoveryv1.EndpointSlice{}
			if err := yaml.UnmarshalStrict(doc, s); err != nil {
				return nil, nil, fmt.Errorf("document %d: %w", i, err)
			}
			eps = append(eps, s)
		default:
			return nil, nil, fmt.Errorf("document %d: unexpected kind %q", i, meta.Kind)
		}
	}
	return svcs, eps, nil
}

// splitYAML splits a stream at lines that are exactly "---" and drops
// documents that hold only blank lines and comments.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		for _, line := range strings.Split(cur.String(), "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				docs = append(docs, bytes.Clone(cur.Bytes()))
				break
			}
		}
		cur.Reset()
	}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if strings.TrimRight(line, " \r\n") == "---" {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return docs
}

// buildViews joins Services and EndpointSlices the way model/view.go
// documents the view.
func buildViews(svcs []*corev1.Service, eps []*discoveryv1.EndpointSlice) []*model.Service {
	var out []*model.Service
	for _, s := range svcs {
		key := model.ServiceKey{Namespace: s.Namespace, Name: s.Name}
		var mine []*discoveryv1.EndpointSlice
		for _, es := range eps {
			if es.Namespace == s.Namespace && es.Labels[discoveryv1.LabelServiceName] == s.Name {
				mine = append(mine, es)
			}
		}
		v := &model.Service{
			Key:          key,
			Type:         string(s.Spec.Type),
			Headless:     s.Spec.ClusterIP == corev1.ClusterIPNone,
			ExternalName: s.Spec.ExternalName,
			SliceCount:   len(mine),
		}
		if s.Spec.TrafficDistribution != nil {
			v.TrafficDistribution = *s.Spec.TrafficDistribution
		}
		for k, val := range s.Annotations {
			if strings.HasPrefix(k, "switchboard.io/") {
				if v.Annotations == nil {
					v.Annotations = map[string]string{}
				}
				v.Annotations[k] = val
			}
		}
		for _, sp := range s.Spec.Ports {
			v.Ports = append(v.Ports, buildPort(sp, mine))
		}
		slices.SortStableFunc(v.Ports, func(a, b model.Port) int {
			return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
		})
		out = append(out, v)
	}
	return out
}

// buildPort collects the endpoints of one Service port from the slices
// whose port list carries a port with the same name and protocol.
func buildPort(sp corev1.ServicePort, mine []*discoveryv1.EndpointSlice) model.Port {
	p := model.Port{
		Name:     sp.Name,
		Port:     sp.Port,
		Protocol: string(sp.Protocol),
	}
	if sp.AppProtocol != nil {
		p.AppProtocol = *sp.AppProtocol
	}
	if sp.TargetPort.Type == intstr.String {
		p.TargetPortName = sp.TargetPort.StrVal
	} else {
		p.TargetPort = sp.TargetPort.IntVal
	}
	protocol := cmp.Or(p.Protocol, "TCP")
	carried := false
	// Dual-stack merge: an endpoint of an IPv4 slice and one of an IPv6
	// slice with the same targetRef and port are one endpoint, IPv4 first.
	type mergeKey struct {
		ref  string
		port int32
	}
	merged := map[mergeKey]int{}
	ordered := slices.Clone(mine)
	slices.SortStableFunc(ordered, func(a, b *discoveryv1.EndpointSlice) int {
		return cmp.Compare(a.AddressType, b.AddressType) // "IPv4" < "IPv6"
	})
	for _, es := range ordered {
		var port *int32
		found := false
		for _, ep := range es.Ports {
			name, proto := "", "TCP"
			if ep.Name != nil {
				name = *ep.Name
			}
			if ep.Protocol != nil {
				proto = string(*ep.Protocol)
			}
			if name == sp.Name && proto == protocol {
				port, found = ep.Port, true
				break
			}
		}
		if !found {
			continue
		}
		carried = true
		if port == nil {
			continue // "all ports": not meaningful for a named Service port
		}
		for _, e := range es.Endpoints {
			we := model.Endpoint{
				Addresses:   slices.Clone(e.Addresses),
				Port:        *port,
				Ready:       e.Conditions.Ready == nil || *e.Conditions.Ready,
				Serving:     e.Conditions.Serving == nil || *e.Conditions.Serving,
				Terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
			}
			if e.Zone != nil {
				we.Zone = *e.Zone
			}
			if e.NodeName != nil {
				we.NodeName = *e.NodeName
			}
			if e.Hostname != nil {
				we.Hostname = *e.Hostname
			}
			if e.Hints != nil {
				for _, z := range e.Hints.ForZones {
					we.ForZones = append(we.ForZones, z.Name)
				}
				slices.Sort(we.ForZones)
			}
			if r := e.TargetRef; r != nil {
				k := mergeKey{ref: r.Kind + "/" + r.Namespace + "/" + r.Name, port: *port}
				if i, ok := merged[k]; ok {
					p.Endpoints[i].Addresses = append(p.Endpoints[i].Addresses, e.Addresses...)
					continue
				}
				merged[k] = len(p.Endpoints)
			}
			p.Endpoints = append(p.Endpoints, we)
		}
	}
	p.Unresolved = len(mine) > 0 && !carried
	// Sorted by Addresses[0], then Port; one entry per (address, port).
	slices.SortStableFunc(p.Endpoints, func(a, b model.Endpoint) int {
		return cmp.Or(cmp.Compare(first(a.Addresses), first(b.Addresses)), cmp.Compare(a.Port, b.Port))
	})
	p.Endpoints = slices.CompactFunc(p.Endpoints, func(a, b model.Endpoint) bool {
		return first(a.Addresses) == first(b.Addresses) && a.Port == b.Port
	})
	if len(p.Endpoints) == 0 {
		p.Endpoints = nil
	}
	return p
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
