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
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// objKey names one object of a manifest folder.
type objKey struct {
	kind, namespace, name string
}

// object is one Service or EndpointSlice read from a manifest file.
type object struct {
	key objKey
	obj runtime.Object // *corev1.Service or *discoveryv1.EndpointSlice; never mutated
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
	return false
}

// manifestDecoder turns file contents into objects.
type manifestDecoder struct {
	decoder runtime.Decoder
	log     *slog.Logger
}

func newManifestDecoder(log *slog.Logger) (*manifestDecoder, error) {
	scheme := runtime.NewScheme()
	if err := errors.Join(corev1.AddToScheme(scheme), discoveryv1.AddToScheme(scheme)); err != nil {
		return nil, fmt.Errorf("build manifest scheme: %w", err)
	}
	// Strict: a misspelt field (say "adresses") is an error that names the
	// file, not an endpoint that silently goes missing.
	codecs := serializer.NewCodecFactory(scheme, serializer.EnableStrict)
	return &manifestDecoder{decoder: codecs.UniversalDeserializer(), log: log}, nil
}

// decodeFile returns the Services, EndpointSlices and Nodes in data: YAML documents
// separated by "---", a stream of JSON objects, or either holding a v1 List.
// Other kinds are skipped with a debug log. Any bad document makes the whole
// file an error (the caller keeps the file's last good content), and the
// error names every bad document.
func (d *manifestDecoder) decodeFile(file string, data []byte) ([]object, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var (
		out  []object
		errs []error
	)
	for doc := 1; ; doc++ {
		var raw runtime.RawExtension
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			// A syntax error: the decoder cannot find the next document.
			errs = append(errs, fmt.Errorf("document %d: %w", doc, err))
			break
		}
		raw.Raw = bytes.TrimSpace(raw.Raw)
		if len(raw.Raw) == 0 || string(raw.Raw) == "null" {
			continue // an empty document, such as a trailing "---"
		}
		objs, err := d.decodeObject(file, raw.Raw, 0)
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", doc, err))
			continue
		}
		out = append(out, objs...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// maxListDepth bounds Lists nested in Lists.
const maxListDepth = 8

func (d *manifestDecoder) decodeObject(file string, raw []byte, depth int) ([]object, error) {
	obj, gvk, err := d.decoder.Decode(raw, nil, nil)
	if runtime.IsNotRegisteredError(err) {
		d.ignore(file, gvk, raw)
		return nil, nil
	}
	if err != nil {
		return nil, err // strict errors too: obj may be set, but the file is wrong
	}
	switch o := obj.(type) {
	case *corev1.Service:
		defaultNamespace(&o.ObjectMeta)
		if o.Name == "" {
			return nil, errors.New("a Service needs metadata.name")
		}
		return []object{{objKey{kindService, o.Namespace, o.Name}, o}}, nil
	case *discoveryv1.EndpointSlice:
		defaultNamespace(&o.ObjectMeta)
		if err := validateSlice(o); err != nil {
			return nil, fmt.Errorf("EndpointSlice %s/%s: %w", o.Namespace, o.Name, err)
		}
		if o.Labels[discoveryv1.LabelServiceName] == "" {
			d.log.Warn("EndpointSlice has no "+discoveryv1.LabelServiceName+" label and serves no Service",
				"file", file, "namespace", o.Namespace, "name", o.Name)
		}
		return []object{{objKey{kindEndpointSlice, o.Namespace, o.Name}, o}}, nil
	case *corev1.Node:
		if o.Name == "" {
			return nil, errors.New("a Node needs metadata.name")
		}
		return []object{{objKey{kindNode, "", o.Name}, o}}, nil
	case *corev1.List:
		if depth >= maxListDepth {
			return nil, fmt.Errorf("more than %d nested Lists", maxListDepth)
		}
		var (
			out  []object
			errs []error
		)
		for i, item := range o.Items {
			objs, err := d.decodeObject(file, item.Raw, depth+1)
			if err != nil {
				errs = append(errs, fmt.Errorf("item %d of the List: %w", i, err))
				continue
			}
			out = append(out, objs...)
		}
		return out, errors.Join(errs...)
	default:
		d.ignore(file, gvk, raw)
		return nil, nil
	}
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
