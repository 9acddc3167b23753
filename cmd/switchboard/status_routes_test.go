package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-xds/switchboard/model"
)

// TestStatusRoutes checks status --routes: one line per route and Service
// parent, from /debug/routes as the debug handler writes it.
func TestStatusRoutes(t *testing.T) {
	body, err := json.Marshal([]*model.RouteStatus{{
		Route:      model.RouteKey{Kind: model.KindGRPCRoute, Namespace: "demo", Name: "greeter"},
		Generation: 3,
		Parents: []model.ParentStatus{{
			Parent:           model.ParentRef{Kind: "Service", Namespace: "demo", Name: "greeter", Port: 50051},
			Accepted:         model.Condition{Status: true, Reason: model.ReasonAccepted},
			ResolvedRefs:     model.Condition{Reason: model.ReasonBackendNotFound, Message: "backendRef demo/v3: Service not found"},
			PartiallyInvalid: &model.Condition{Status: true, Reason: model.ReasonUnsupportedValue, Message: "filter"},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/routes" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	if err := status(context.Background(), statusOptions{Debug: strings.TrimPrefix(srv.URL, "http://"), Output: "text", Routes: true}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want a header and 1 route:\n%s", len(lines), out.String())
	}
	want := "GRPCRoute demo/greeter  3  Service demo/greeter:50051  True  False (BackendNotFound)  True  backendRef demo/v3: Service not found"
	if got := strings.Join(strings.Fields(lines[1]), " "); got != strings.Join(strings.Fields(want), " ") {
		t.Errorf("route line = %q, want %q", got, want)
	}
}
