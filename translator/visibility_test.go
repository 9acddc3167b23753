package translator

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-xds/switchboard/model"
)

func TestVisibilityAnnotation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ann     map[string]string // nil: no annotation
		want    []string
		problem string // a substring of the one diagnostic; "" for none
	}{
		{name: "absent: everyone", want: nil},
		{name: "list", ann: map[string]string{AnnotationVisibleTo: "ns-b, ns-a"}, want: []string{"ns-a", "ns-b", "own"}},
		{name: "own and repeats", ann: map[string]string{AnnotationVisibleTo: "own,ns-a,ns-a,"}, want: []string{"ns-a", "own"}},
		{name: "empty: own only", ann: map[string]string{AnnotationVisibleTo: ""}, want: []string{"own"}},
		{
			name: "invalid name: own only", ann: map[string]string{AnnotationVisibleTo: "ns-a,Bad_NS"}, want: []string{"own"},
			problem: `annotation switchboard.io/visible-to="ns-a,Bad_NS": "Bad_NS" is not a namespace name`,
		},
		{
			name: "more namespaces than MaxVisibleTo: own only", ann: map[string]string{AnnotationVisibleTo: manyNamespaces(MaxVisibleTo + 1)}, want: []string{"own"},
			problem: "lists 65 namespaces, more than 64",
		},
		{name: "MaxVisibleTo namespaces", ann: map[string]string{AnnotationVisibleTo: manyNamespaces(MaxVisibleTo) + ",own"}, want: slices.Sorted(slices.Values(append(strings.Split(manyNamespaces(MaxVisibleTo), ","), "own")))},
		{
			name: "wildcard is not a namespace", ann: map[string]string{AnnotationVisibleTo: "*"}, want: []string{"own"},
			problem: `"*" is not a namespace name`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &model.Service{
				Key:         model.ServiceKey{Namespace: "own", Name: "s"},
				Annotations: tc.ann,
				Ports:       []model.Port{{Name: "grpc", Port: 80}},
			}
			res, diags := Service(Options{}, svc)
			if !slices.Equal(res.Visibility, tc.want) || (tc.want == nil) != (res.Visibility == nil) {
				t.Errorf("Visibility = %q, want %q", res.Visibility, tc.want)
			}
			if len(res.Listeners) != 1 {
				t.Errorf("got %d listeners, want the Service translated as usual", len(res.Listeners))
			}
			var got []string
			for _, d := range diags {
				if strings.Contains(d.Reason, AnnotationVisibleTo) {
					got = append(got, d.Reason)
				}
			}
			switch {
			case tc.problem == "" && len(got) > 0:
				t.Errorf("unexpected diagnostics %q", got)
			case tc.problem != "" && (len(got) != 1 || !strings.Contains(got[0], tc.problem) || !strings.HasSuffix(got[0], "visible to namespace own only")):
				t.Errorf("diagnostics %q, want one containing %q that says what is served", got, tc.problem)
			}
		})
	}
}

// manyNamespaces lists n namespace names, "ns-0,ns-1,...".
func manyNamespaces(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("ns-%d", i)
	}
	return strings.Join(names, ",")
}
