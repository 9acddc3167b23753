package xds

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// csdsByName indexes one client's generic configs by type URL and name.
func csdsByName(cc *statusv3.ClientConfig) map[string]*statusv3.ClientConfig_GenericXdsConfig {
	out := map[string]*statusv3.ClientConfig_GenericXdsConfig{}
	for _, g := range cc.GetGenericXdsConfigs() {
		out[g.GetTypeUrl()+" "+g.GetName()] = g
	}
	return out
}

// TestCSDS asks the server's CSDS, with go-control-plane's generated
// client, about a client that ACKed and one that NACKed: statuses, the
// resource sent, the NACK's error state, a name that does not exist, the
// node matcher, and the streaming RPC.
func TestCSDS(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 5)})
	good := h.client(t)
	good.node = &corev3.Node{Id: "good", UserAgentName: "envoy"}
	good.request(resourcev3.EndpointType, []string{"a", "missing"}, nil, "")
	r := good.next()
	good.request(resourcev3.EndpointType, []string{"a", "missing"}, r, "")
	bad := h.client(t)
	bad.node = &corev3.Node{Id: "bad"}
	bad.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	r = bad.next()
	bad.request(resourcev3.EndpointType, []string{"a"}, r, "no thanks")
	waitFor(t, func() bool {
		var acked, nacked bool
		for _, c := range h.srv.Clients() {
			acked = acked || (c.NodeID == "good" && c.Types[endpointType].State() == StateSynced)
			nacked = nacked || (c.NodeID == "bad" && c.Types[endpointType].State() == StateNacked)
		}
		return acked && nacked
	})

	csds := statusv3.NewClientStatusDiscoveryServiceClient(h.conn)
	ctx := context.Background()
	resp, err := csds.FetchClientStatus(ctx, &statusv3.ClientStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetConfig()) != 2 {
		t.Fatalf("CSDS returned %d clients, want 2", len(resp.GetConfig()))
	}
	for _, cc := range resp.GetConfig() {
		byName := csdsByName(cc)
		a := byName[resourcev3.EndpointType+" a"]
		if a == nil {
			t.Fatalf("client %s: no config for assignment a: %v", cc.GetNode().GetId(), cc)
		}
		var cla endpointv3.ClusterLoadAssignment
		if err := a.GetXdsConfig().UnmarshalTo(&cla); err != nil || cla.GetEndpoints()[0].GetLoadBalancingWeight().GetValue() != 5 {
			t.Errorf("client %s: xds_config of a = %v (%v), want the assignment sent", cc.GetNode().GetId(), &cla, err)
		}
		if a.GetVersionInfo() != h.cache.getView(endpointType, "a", nil).Version() || a.GetLastUpdated() == nil {
			t.Errorf("client %s: a has version %q, last_updated %v", cc.GetNode().GetId(), a.GetVersionInfo(), a.GetLastUpdated())
		}
		switch cc.GetNode().GetId() {
		case "good":
			if a.GetConfigStatus() != statusv3.ConfigStatus_SYNCED || a.GetClientStatus() != adminv3.ClientResourceStatus_ACKED {
				t.Errorf("good: a is %v/%v, want SYNCED/ACKED", a.GetConfigStatus(), a.GetClientStatus())
			}
			m := byName[resourcev3.EndpointType+" missing"]
			if m.GetConfigStatus() != statusv3.ConfigStatus_NOT_SENT || m.GetClientStatus() != adminv3.ClientResourceStatus_DOES_NOT_EXIST {
				t.Errorf("good: missing is %v/%v, want NOT_SENT/DOES_NOT_EXIST", m.GetConfigStatus(), m.GetClientStatus())
			}
		case "bad":
			if a.GetConfigStatus() != statusv3.ConfigStatus_ERROR || a.GetClientStatus() != adminv3.ClientResourceStatus_NACKED ||
				!strings.Contains(a.GetErrorState().GetDetails(), "no thanks") || a.GetErrorState().GetLastUpdateAttempt() == nil {
				t.Errorf("bad: a is %v/%v, error state %v; want ERROR/NACKED with the NACK's message", a.GetConfigStatus(), a.GetClientStatus(), a.GetErrorState())
			}
		default:
			t.Errorf("unexpected node %v", cc.GetNode())
		}
	}

	// A node matcher on the exact id, over the streaming RPC, without
	// resource contents.
	stream, err := csds.StreamClientStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&statusv3.ClientStatusRequest{
		NodeMatchers:            []*matcherv3.NodeMatcher{{NodeId: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "bad"}}}},
		ExcludeResourceContents: true,
	}); err != nil {
		t.Fatal(err)
	}
	sresp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(sresp.GetConfig()) != 1 || sresp.GetConfig()[0].GetNode().GetId() != "bad" {
		t.Fatalf("node matcher for \"bad\" returned %v", sresp.GetConfig())
	}
	if g := sresp.GetConfig()[0].GetGenericXdsConfigs(); len(g) != 1 || g[0].GetXdsConfig() != nil {
		t.Fatalf("exclude_resource_contents: got %v", g)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

// askerKey carries a test asker's namespace in a context.
type askerKey struct{}

// With AskerNamespace (mutual TLS), an asker is told about the clients of
// its own namespace only, and one without an identity about none.
func TestCSDSScopedToAskerNamespace(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 5)})
	for _, ns := range []string{"x", "y"} {
		c := h.client(t)
		c.node = envoyIn(ns)
		c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
		c.next()
	}
	waitFor(t, func() bool { return len(h.srv.Clients()) == 2 })
	csds := NewCSDS(h.srv, CSDSOptions{AskerNamespace: func(ctx context.Context) (string, error) {
		ns, ok := ctx.Value(askerKey{}).(string)
		if !ok {
			return "", errors.New("no identity")
		}
		return ns, nil
	}})
	for _, c := range []struct {
		ctx  context.Context
		want []string
	}{
		{context.WithValue(context.Background(), askerKey{}, "x"), []string{"sidecar-x"}},
		{context.WithValue(context.Background(), askerKey{}, "z"), nil},
		{context.Background(), nil},
	} {
		resp, err := csds.FetchClientStatus(c.ctx, &statusv3.ClientStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, cc := range resp.GetConfig() {
			got = append(got, cc.GetNode().GetId())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("asker %v: clients %v, want %v", c.ctx.Value(askerKey{}), got, c.want)
		}
	}
}
