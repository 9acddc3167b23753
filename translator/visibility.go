package translator

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/switchboard-xds/switchboard/model"
)

// AnnotationVisibleTo limits which clients may see a Service: a list of
// namespaces separated by commas, for example "ns-a,ns-b". Only clients in
// one of them, or in the Service's own namespace, are served its
// resources (see Client.MaySee); without the annotation every client is.
// An empty value means the Service's own namespace only. A value that
// names anything that is not a namespace name (a DNS-1123 label) makes the
// Service visible to its own namespace only, with a Diagnostic: a typo
// must never widen who sees a Service.
const AnnotationVisibleTo = "switchboard.io/visible-to"

// MaxVisibleTo is the most namespaces AnnotationVisibleTo may list. Every
// namespace listed gets its own variant of the sidecar resources the
// Service is on (a route configuration of every Service on its port, the
// DNS table), so one annotation listing thousands would cost thousands of
// full copies; a longer list makes the Service visible to its own
// namespace only, with a Diagnostic, like any other invalid value.
const MaxVisibleTo = 64

// visibility reads AnnotationVisibleTo of svc: nil when every client may
// see it; else the namespaces whose clients may, sorted and distinct, the
// Service's own among them, and a problem (a sentence for a Diagnostic)
// when the value is invalid.
func visibility(svc *model.Service) ([]string, string) {
	v, ok := svc.Annotations[AnnotationVisibleTo]
	if !ok {
		return nil, ""
	}
	own := svc.Key.Namespace
	out := []string{own}
	for entry := range strings.SplitSeq(v, ",") {
		ns := strings.TrimSpace(entry)
		if ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return []string{own}, fmt.Sprintf("annotation %s=%q: %q is not a namespace name (%s); visible to namespace %s only",
				AnnotationVisibleTo, v, ns, strings.Join(errs, "; "), own)
		}
		out = append(out, ns)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxVisibleTo+1 { // the own namespace does not count
		return []string{own}, fmt.Sprintf("annotation %s lists %d namespaces, more than %d; visible to namespace %s only",
			AnnotationVisibleTo, len(out)-1, MaxVisibleTo, own)
	}
	return out, ""
}
