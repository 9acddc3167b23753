package watcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/switchboard-xds/switchboard/model"
)

// objKey names one object of a manifest folder.
type objKey struct {
	kind, namespace, name string
}

// object is one Service, EndpointSlice, Node, route or ReferenceGrant read
// from a manifest file.
type object struct {
	key objKey
	obj runtime.Object // *corev1.Service, *discoveryv1.EndpointSlice, ...; never mutated
	// mesh is the trimmed view of a route (*model.MeshRoute) or grant
	// (*model.ReferenceGrant), made once when decoded.
	mesh any
}

// upsert records o in s and reports whether any view changed; a Node only
// counts when Nodes are watched.
func (o object) upsert(s *Store, nodeRegions bool) bool {
	switch obj := o.obj.(type) {
	case *corev1.Service:
		return s.UpsertService(obj)
	case *discoveryv1.EndpointSlice:
		return s.UpsertSlice(obj)
	case *corev1.Node:
		return nodeRegions && s.UpsertNode(obj)
	}
	switch m := o.mesh.(type) {
	case *model.MeshRoute:
		return s.UpsertRoute(m)
	case *model.ReferenceGrant:
		return s.UpsertGrant(m)
	}
	return false
}

// remove deletes the object named k from s and reports whether any view
// changed.
func (k objKey) remove(s *Store) bool {
	switch k.kind {
	case kindService:
		return s.DeleteService(k.namespace, k.name)
	case kindEndpointSlice:
		return s.DeleteSlice(k.namespace, k.name)
	case kindNode:
		return s.DeleteNode(k.name)
	case kindHTTPRoute:
		return s.DeleteRoute(model.RouteKey{Kind: model.KindHTTPRoute, Namespace: k.namespace, Name: k.name})
	case kindGRPCRoute:
		return s.DeleteRoute(model.RouteKey{Kind: model.KindGRPCRoute, Namespace: k.namespace, Name: k.name})
	case kindReferenceGrant:
		return s.DeleteGrant(model.GrantKey{Namespace: k.namespace, Name: k.name})
	}
	return false
}

// manifestDecoder turns file contents into objects.
type manifestDecoder struct {
	decoder runtime.Decoder
	log     *slog.Logger
}

func newManifestDecoder(log *slog.Logger) (*manifestDecoder, error) {
	scheme := runtime.NewScheme()
	if err := errors.Join(corev1.AddToScheme(scheme), discoveryv1.AddToScheme(scheme),
		gwv1.Install(scheme), gwv1beta1.Install(scheme)); err != nil {
		return nil, fmt.Errorf("build manifest scheme: %w", err)
	}
	// Strict: a misspelt field (say "adresses") is an error that names the
	// file, not an endpoint that silently goes missing.
	codecs := serializer.NewCodecFactory(scheme, serializer.EnableStrict)
	return &manifestDecoder{decoder: codecs.UniversalDeserializer(), log: log}, nil
}

// badDoc is one document, or one item of a List, that is valid YAML or JSON
// but not a valid object.
type badDoc struct {
	// key names the object the document meant to define, when its
	// apiVersion, kind and metadata say so; known is false otherwise.
	key   objKey
	known bool
	err   error
}

// decodeFile returns the Services, EndpointSlices, Nodes, routes and
// ReferenceGrants in data: YAML
// documents separated by "---", a stream of JSON objects, or either holding
// a v1 List. Other kinds are skipped with a debug log. Documents (and List
// items) that are not valid objects come back in bad, each naming its
// document; the valid ones still come back in objs. err is set only when the
// stream itself does not parse (a YAML or JSON syntax error): then which
// documents the file holds is unknown and objs and bad are nil.
func (d *manifestDecoder) decodeFile(file string, data []byte) (objs []object, bad []badDoc, err error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for doc := 1; ; doc++ {
		var raw runtime.RawExtension
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, bad, nil
			}
			return nil, nil, fmt.Errorf("document %d: %w", doc, err)
		}
		raw.Raw = bytes.TrimSpace(raw.Raw)
		if len(raw.Raw) == 0 || string(raw.Raw) == "null" {
			continue // an empty document, such as a trailing "---"
		}
		o, b := d.decodeObject(file, raw.Raw, 0)
		objs = append(objs, o...)
		for _, x := range b {
			x.err = fmt.Errorf("document %d: %w", doc, x.err)
			bad = append(bad, x)
		}
	}
}

// maxListDepth bounds Lists nested in Lists.
const maxListDepth = 8

// decodeObject decodes one document or List item: the objects it holds and
// the ones (items of a List, or itself) that are not valid.
func (d *manifestDecoder) decodeObject(file string, raw []byte, depth int) ([]object, []badDoc) {
	obj, gvk, err := d.decoder.Decode(raw, nil, nil)
	if runtime.IsNotRegisteredError(err) {
		d.ignore(file, gvk, raw)
		return nil, nil
	}
	fail := func(err error) ([]object, []badDoc) {
		k, ok := identify(raw)
		return nil, []badDoc{{key: k, known: ok, err: err}}
	}
	if err != nil {
		return fail(err) // strict errors too: obj may be set, but the document is wrong
	}
	switch o := obj.(type) {
	case *corev1.Service:
		defaultNamespace(&o.ObjectMeta)
		if o.Name == "" {
			return fail(errors.New("a Service needs metadata.name"))
		}
		if err := validateService(o); err != nil {
			return fail(fmt.Errorf("Service %s/%s: %w", o.Namespace, o.Name, err))
		}
		return []object{{key: objKey{kindService, o.Namespace, o.Name}, obj: o}}, nil
	case *discoveryv1.EndpointSlice:
		defaultNamespace(&o.ObjectMeta)
		if err := validateSlice(o); err != nil {
			return fail(fmt.Errorf("EndpointSlice %s/%s: %w", o.Namespace, o.Name, err))
		}
		if o.Labels[discoveryv1.LabelServiceName] == "" {
			d.log.Warn("EndpointSlice has no "+discoveryv1.LabelServiceName+" label and serves no Service",
				"file", file, "namespace", o.Namespace, "name", o.Name)
		}
		return []object{{key: objKey{kindEndpointSlice, o.Namespace, o.Name}, obj: o}}, nil
	case *corev1.Node:
		if o.Name == "" {
			return fail(errors.New("a Node needs metadata.name"))
		}
		return []object{{key: objKey{kindNode, "", o.Name}, obj: o}}, nil
	case *gwv1beta1.HTTPRoute:
		return meshObject(fail, kindHTTPRoute, (*gwv1.HTTPRoute)(o))
	case *gwv1beta1.ReferenceGrant:
		return meshObject(fail, kindReferenceGrant, (*gwv1.ReferenceGrant)(o))
	case *gwv1.HTTPRoute:
		return meshObject(fail, kindHTTPRoute, o)
	case *gwv1.GRPCRoute:
		return meshObject(fail, kindGRPCRoute, o)
	case *gwv1.ReferenceGrant:
		return meshObject(fail, kindReferenceGrant, o)
	case *corev1.List:
		if depth >= maxListDepth {
			return fail(fmt.Errorf("more than %d nested Lists", maxListDepth))
		}
		var (
			out []object
			bad []badDoc
		)
		for i, item := range o.Items {
			objs, b := d.decodeObject(file, item.Raw, depth+1)
			out = append(out, objs...)
			for _, x := range b {
				x.err = fmt.Errorf("item %d of the List: %w", i, x.err)
				bad = append(bad, x)
			}
		}
		return out, bad
	default:
		d.ignore(file, gvk, raw)
		return nil, nil
	}
}

// meshObject is the object of a route or ReferenceGrant o (of one of
// the gateway.networking.k8s.io versions, as v1) with its trimmed view, or
// fail's bad document when it is not valid.
func meshObject(fail func(error) ([]object, []badDoc), kind string, o interface {
	runtime.Object
	metav1.Object
},
) ([]object, []badDoc) {
	if o.GetNamespace() == "" {
		o.SetNamespace(metav1.NamespaceDefault)
	}
	if o.GetName() == "" {
		return fail(fmt.Errorf("a %s needs metadata.name", kind))
	}
	var view any
	switch o := o.(type) {
	case *gwv1.HTTPRoute:
		r, err := trimHTTPRoute(o)
		if err != nil {
			return fail(fmt.Errorf("HTTPRoute %s/%s: %w", o.Namespace, o.Name, err))
		}
		view = r
	case *gwv1.GRPCRoute:
		view = trimGRPCRoute(o)
	case *gwv1.ReferenceGrant:
		view = trimGrant(o)
	}
	return []object{{key: objKey{kind, o.GetNamespace(), o.GetName()}, obj: o, mesh: view}}, nil
}

// identify reads which object a bad document meant to define, from its
// apiVersion, kind and metadata alone. It reports false when they do not
// name a Service, EndpointSlice or Node with a name.
func identify(raw []byte) (objKey, bool) {
	var meta metav1.PartialObjectMetadata
	if json.Unmarshal(raw, &meta) != nil || meta.Name == "" {
		return objKey{}, false
	}
	defaultNamespace(&meta.ObjectMeta)
	switch {
	case meta.APIVersion == "v1" && meta.Kind == "Service":
		return objKey{kindService, meta.Namespace, meta.Name}, true
	case meta.APIVersion == discoveryv1.SchemeGroupVersion.String() && meta.Kind == "EndpointSlice":
		return objKey{kindEndpointSlice, meta.Namespace, meta.Name}, true
	case meta.APIVersion == "v1" && meta.Kind == "Node":
		return objKey{kindNode, "", meta.Name}, true
	case meta.GroupVersionKind().Group == gwv1.GroupName:
		switch meta.Kind {
		case "HTTPRoute":
			return objKey{kindHTTPRoute, meta.Namespace, meta.Name}, true
		case "GRPCRoute":
			return objKey{kindGRPCRoute, meta.Namespace, meta.Name}, true
		case "ReferenceGrant":
			return objKey{kindReferenceGrant, meta.Namespace, meta.Name}, true
		}
	}
	return objKey{}, false
}

func (d *manifestDecoder) ignore(file string, gvk *schema.GroupVersionKind, raw []byte) {
	var meta metav1.PartialObjectMetadata
	_ = json.Unmarshal(raw, &meta) // best effort: only for the log line
	if gvk != nil {
		meta.APIVersion, meta.Kind = gvk.GroupVersion().String(), gvk.Kind
	}
	d.log.Debug("ignoring manifest object of another kind", "file", file, "apiVersion", meta.APIVersion,
		"kind", meta.Kind, "namespace", meta.Namespace, "name", meta.Name)
}

func defaultNamespace(m *metav1.ObjectMeta) {
	if m.Namespace == "" {
		m.Namespace = metav1.NamespaceDefault
	}
}

// validateService applies the API server's checks on a Service's port
// names (apis/core/validation, validateServicePort): each name a DNS-1123
// label (at most 63 lowercase ASCII letters, digits and '-', starting and
// ending with a letter or digit) and no name twice. A port name is put on
// the wire as an SRV record in every sidecar's DNS table, so one with a
// space or a non-ASCII rune would have that table NACKed by every sidecar.
// The Service's other rules (its name, port numbers, unnamed ports among
// several) are the translator's: it leaves out what is wrong there with a
// diagnostic (translator/testdata/in/invalid-input.yaml).
func validateService(svc *corev1.Service) error {
	var errs []error
	names := make(map[string]bool, len(svc.Spec.Ports))
	for i, p := range svc.Spec.Ports {
		if p.Name == "" {
			continue
		}
		if names[p.Name] {
			errs = append(errs, fmt.Errorf("spec.ports[%d].name %q: a duplicate port name", i, p.Name))
		}
		names[p.Name] = true
		for _, msg := range validation.IsDNS1123Label(p.Name) {
			errs = append(errs, fmt.Errorf("spec.ports[%d].name %q: %s", i, p.Name, msg))
		}
	}
	return errors.Join(errs...)
}

// validateSlice applies the API server's checks that matter to the view, so a
// manifest typo is reported instead of silently dropping an endpoint.
func validateSlice(es *discoveryv1.EndpointSlice) error {
	if es.Name == "" {
		return errors.New("no metadata.name")
	}
	var v6 bool
	switch es.AddressType {
	case discoveryv1.AddressTypeIPv4:
	case discoveryv1.AddressTypeIPv6:
		v6 = true
	case discoveryv1.AddressTypeFQDN:
		return nil // not served (as by kube-proxy), but valid
	default:
		return fmt.Errorf("addressType %q is not IPv4, IPv6 or FQDN", es.AddressType)
	}
	var errs []error
	for i, ep := range es.Endpoints {
		if len(ep.Addresses) == 0 {
			errs = append(errs, fmt.Errorf("endpoint %d has no addresses", i))
			continue
		}
		for _, a := range ep.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil || ip.Zone() != "" || ip.Is4In6() || ip.Is6() != v6 {
				errs = append(errs, fmt.Errorf("endpoint %d: %q is not an %s address", i, a, es.AddressType))
			}
		}
	}
	for i, p := range es.Ports {
		if p.Port != nil && (*p.Port < 1 || *p.Port > 65535) {
			errs = append(errs, fmt.Errorf("port %d: %d is out of range", i, *p.Port))
		}
	}
	return errors.Join(errs...)
}
