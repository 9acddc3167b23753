package envoysim

import (
	"fmt"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// wildcardTypes are subscribed first, with no names; Envoy sends CDS before
// LDS (ENVOY.md §4, docs xds_protocol.rst "Eventual consistency").
var wildcardTypes = []string{resourcev3.ClusterType, resourcev3.ListenerType}

// startSotW sends the two wildcard requests and returns the receive loop.
// Each request carries the node (set_node_on_first_message_only defaults to
// false in Envoy's ApiConfigSource).
func (c *Client) startSotW(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, node *corev3.Node) (func() error, error) {
	for _, t := range wildcardTypes {
		if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: t}); err != nil {
			return nil, fmt.Errorf("send %s: %w", t, err)
		}
	}
	version, nonce, names := map[string]string{}, map[string]string{}, map[string][]string{}
	subscribed := map[string]bool{}
	return func() error {
		for {
			resp, err := st.Recv()
			if err != nil {
				return err
			}
			t := resp.GetTypeUrl()
			wildcard := t == resourcev3.ListenerType || t == resourcev3.ClusterType
			c.record(t, proto.Size(resp), resp.GetResources(), 0)
			detail := c.apply(t, resp.GetNonce(), resp.GetResources(), nil, wildcard)
			if detail == "" {
				version[t] = resp.GetVersionInfo()
			}
			nonce[t] = resp.GetNonce()
			if err := st.Send(&discoveryv3.DiscoveryRequest{
				Node: node, TypeUrl: t, VersionInfo: version[t], ResponseNonce: nonce[t],
				ResourceNames: names[t], ErrorDetail: nackStatus(detail),
			}); err != nil {
				return fmt.Errorf("ack %s: %w", t, err)
			}
			if !wildcard {
				continue
			}
			for _, sub := range c.wanted() {
				if slices.Equal(sub.names, names[sub.typeURL]) && (subscribed[sub.typeURL] || len(sub.names) == 0) {
					continue
				}
				names[sub.typeURL], subscribed[sub.typeURL] = sub.names, true
				if err := st.Send(&discoveryv3.DiscoveryRequest{
					Node: node, TypeUrl: sub.typeURL, VersionInfo: version[sub.typeURL], ResponseNonce: nonce[sub.typeURL], ResourceNames: sub.names,
				}); err != nil {
					return fmt.Errorf("subscribe %s: %w", sub.typeURL, err)
				}
			}
		}
	}, nil
}

// startDelta sends the two wildcard requests (empty
// resource_names_subscribe: delta_subscription_state.cc
// getNextRequestAckless) and returns the receive loop.
func (c *Client) startDelta(st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, node *corev3.Node) (func() error, error) {
	for _, t := range wildcardTypes {
		if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: t}); err != nil {
			return nil, fmt.Errorf("send %s: %w", t, err)
		}
	}
	names := map[string][]string{}
	return func() error {
		for {
			resp, err := st.Recv()
			if err != nil {
				return err
			}
			t := resp.GetTypeUrl()
			anys := make([]*anypb.Any, 0, len(resp.GetResources()))
			for _, r := range resp.GetResources() {
				a := r.GetResource()
				if a == nil {
					a = &anypb.Any{TypeUrl: "(no resource for " + r.GetName() + ")"}
				}
				anys = append(anys, a)
			}
			c.record(t, proto.Size(resp), anys, len(resp.GetRemovedResources()))
			detail := c.apply(t, resp.GetNonce(), anys, resp.GetRemovedResources(), false)
			if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{
				Node: node, TypeUrl: t, ResponseNonce: resp.GetNonce(), ErrorDetail: nackStatus(detail),
			}); err != nil {
				return fmt.Errorf("ack %s: %w", t, err)
			}
			if t != resourcev3.ListenerType && t != resourcev3.ClusterType {
				continue
			}
			for _, sub := range c.wanted() {
				add, drop := diff(names[sub.typeURL], sub.names)
				if len(add) == 0 && len(drop) == 0 {
					continue
				}
				names[sub.typeURL] = sub.names
				if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{
					Node: node, TypeUrl: sub.typeURL, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: drop,
				}); err != nil {
					return fmt.Errorf("subscribe %s: %w", sub.typeURL, err)
				}
			}
		}
	}, nil
}

// diff returns the names in next but not in prev, and in prev but not next.
func diff(prev, next []string) (add, drop []string) {
	for _, n := range next {
		if !slices.Contains(prev, n) {
			add = append(add, n)
		}
	}
	for _, p := range prev {
		if !slices.Contains(next, p) {
			drop = append(drop, p)
		}
	}
	return add, drop
}
