package xds

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-xds/switchboard/model"
)

// A CSDS answer holds clients only while it stays within
// MaxCSDSResponseBytes; the rest are left out and counted, and a node
// matcher still reaches any one of them.
func TestCSDSAnswerBounded(t *testing.T) {
	const budget = 1000
	h := newHarnessWith(t, ServerOptions{Limits: Limits{MaxCSDSResponseBytes: budget}})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	const n = 12
	for i := range n {
		c := h.client(t)
		c.node = &corev3.Node{Id: fmt.Sprintf("client-%02d", i)}
		c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
		c.next()
	}
	csds := statusv3.NewClientStatusDiscoveryServiceClient(h.conn)
	resp, err := csds.FetchClientStatus(context.Background(), &statusv3.ClientStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, size := len(resp.GetConfig()), proto.Size(resp); got == 0 || got >= n || size > budget {
		t.Fatalf("CSDS answered %d of %d clients in %d bytes; want some, not all, within %d bytes", got, n, size, budget)
	}
	if got := limitHits(h, limitCSDSBytes); got != 1 {
		t.Errorf("limit_exceeded{csds_response_bytes} = %v, want 1", got)
	}
	last := fmt.Sprintf("client-%02d", n-1)
	resp, err = csds.FetchClientStatus(context.Background(), &statusv3.ClientStatusRequest{NodeMatchers: []*matcherv3.NodeMatcher{{
		NodeId: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: last}},
	}}})
	if err != nil || len(resp.GetConfig()) != 1 || resp.GetConfig()[0].GetNode().GetId() != last {
		t.Fatalf("CSDS for %s alone = %v, %v", last, resp, err)
	}
}

// At most MaxCSDSInFlight CSDS requests are answered at once; one more is
// refused with RESOURCE_EXHAUSTED naming the flag, and served once the
// first is done.
func TestCSDSInFlightBounded(t *testing.T) {
	h := newHarnessWith(t, ServerOptions{Limits: Limits{MaxCSDSInFlight: 1}})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	entered, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	csds := NewCSDS(h.srv, CSDSOptions{AskerNamespace: func(context.Context) (string, error) {
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-release // the first answer takes its time
		}
		return "ns", nil
	}})
	done := make(chan error, 1)
	go func() {
		_, err := csds.FetchClientStatus(context.Background(), &statusv3.ClientStatusRequest{})
		done <- err
	}()
	<-entered
	_, err := csds.FetchClientStatus(context.Background(), &statusv3.ClientStatusRequest{})
	if s := status.Convert(err); s.Code() != codes.ResourceExhausted || !strings.Contains(s.Message(), "--xds-csds-max-in-flight") {
		t.Fatalf("a second CSDS request while one is in flight: %v; want RESOURCE_EXHAUSTED naming --xds-csds-max-in-flight", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the first request: %v", err)
	}
	if _, err := csds.FetchClientStatus(context.Background(), &statusv3.ClientStatusRequest{}); err != nil {
		t.Fatalf("a request after the first was done: %v", err)
	}
	if got := limitHits(h, limitCSDSInFlight); got != 1 {
		t.Errorf("limit_exceeded{csds_in_flight} = %v, want 1", got)
	}
}
