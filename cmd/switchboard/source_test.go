package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestPreflight: a forbidden list is logged and left to the informer source
// and --sync-timeout; any other failure ends the start, naming the check.
func TestPreflight(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, "", errors.New("no RBAC"))
	for _, tc := range []struct {
		name    string
		err     error
		wantErr string
		wantLog string
	}{
		{"ok", nil, "", ""},
		{"forbidden", forbidden, "", "endpointslices.discovery.k8s.io is forbidden"},
		{"server error", apierrors.NewInternalError(errors.New("etcd down")), "API server https://x: list endpointslices: ", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset()
			client.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
				return tc.err != nil, nil, tc.err
			})
			var logs bytes.Buffer
			err := preflight(t.Context(), client, nil, false, "https://x", slog.New(slog.NewTextHandler(&logs, nil)))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)) {
				t.Fatalf("preflight = %v, want error %q", err, tc.wantErr)
			}
			if tc.wantLog != "" && !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log %q does not say %q", logs.String(), tc.wantLog)
			}
			if tc.wantLog == "" && logs.Len() > 0 {
				t.Errorf("unexpected log %q", logs.String())
			}
		})
	}
}
