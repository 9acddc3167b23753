package xds

import (
	"context"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/switchboard-xds/switchboard/model"
)

// recordingAuthorizer refuses the node "intruder" and counts its calls.
type recordingAuthorizer struct {
	mu    sync.Mutex
	calls map[string]int
}

func (a *recordingAuthorizer) authorize(ctx context.Context, node *corev3.Node) error {
	if _, ok := peer.FromContext(ctx); !ok {
		return status.Error(codes.Internal, "Authorize got no stream context")
	}
	a.mu.Lock()
	a.calls[node.GetId()]++
	a.mu.Unlock()
	if node.GetId() == "intruder" {
		return status.Error(codes.PermissionDenied, "intruder refused")
	}
	return nil
}

func (a *recordingAuthorizer) count(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[id]
}

// streamError waits for the stream's end.
func streamError(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not end within 10s")
		return nil
	}
}

func TestAuthorizeOncePerStreamWhenNodeFirstSeen(t *testing.T) {
	a := &recordingAuthorizer{calls: map[string]int{}}
	h := newHarnessWith(t, ServerOptions{Authorize: a.authorize})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})

	// An authorized SotW client is served, and asked about once however
	// many requests it sends.
	c := h.client(t)
	c.node = &corev3.Node{Id: "friend"}
	c.request(resourcev3.ListenerType, []string{"a"}, nil, "")
	r := c.next()
	c.request(resourcev3.ListenerType, []string{"a"}, r, "")
	c.request(resourcev3.ClusterType, []string{"a"}, nil, "")
	c.next()
	if n := a.count("friend"); n != 1 {
		t.Errorf("Authorize called %d times for one stream, want 1", n)
	}

	// A refused SotW client gets the error as its stream's status.
	bad := h.client(t)
	bad.node = &corev3.Node{Id: "intruder"}
	bad.request(resourcev3.ListenerType, []string{"a"}, nil, "")
	if err := streamError(t, bad.errc); status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != "intruder refused" {
		t.Errorf("refused SotW stream ended with %v, want PermissionDenied intruder refused", err)
	}
	if len(bad.resps) != 0 {
		t.Errorf("refused client got %d responses", len(bad.resps))
	}

	// So does a delta client.
	d := h.deltaClient(t)
	d.node = &corev3.Node{Id: "intruder"}
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	if err := streamError(t, d.errc); status.Code(err) != codes.PermissionDenied {
		t.Errorf("refused delta stream ended with %v, want PermissionDenied", err)
	}
	if len(h.srv.Clients()) != 1 {
		t.Errorf("Clients() = %+v, want only the authorized stream", h.srv.Clients())
	}
}
