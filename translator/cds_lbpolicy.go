package translator

import (
	"fmt"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	cswrrv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	ringhashv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/ring_hash/v3"
	roundrobinv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	wrrlocalityv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/wrr_locality/v3"
	"google.golang.org/protobuf/proto"
)

// loadBalancingPolicy returns the cluster's load_balancing_policy (gRFC A52)
// for p.lb, nil for round robin (the legacy ROUND_ROBIN enum, which every
// client reads as weighted-locality round robin).
//
// A client walks the list and uses the first policy it knows, so
// least_request and wrr are followed by the default (wrr_locality over
// round_robin): a client without them (grpc-js-xds; wrr there only with
// GRPC_EXPERIMENTAL_XDS_WRR_LB=true) falls back to round robin instead of
// rejecting the cluster, as it would the LEAST_REQUEST enum. The policies
// are top-level entries, not children of wrr_locality: grpc-js-xds rejects
// a wrr_locality whose child it does not know instead of moving on.
//
// The policy depends on p.lb only, so each is built and marshalled once (see
// lbPolicies) and the one message is shared by every cluster that uses it.
func (p policy) loadBalancingPolicy() (*clusterv3.LoadBalancingPolicy, error) {
	if p.lb < 0 || p.lb >= numLBKinds {
		return nil, fmt.Errorf("unknown lb policy %d", p.lb)
	}
	b := lbPolicies()[p.lb]
	return b.policy, b.err
}

// builtLBPolicy is what newLoadBalancingPolicy returned for one lbKind.
type builtLBPolicy struct {
	policy *clusterv3.LoadBalancingPolicy
	err    error
}

// lbPolicies builds the load_balancing_policy of every lbKind once per
// process (a sync.OnceValue: safe for concurrent use). The messages are
// never changed after they are built: translation output is read-only (see
// model.Resources).
var lbPolicies = sync.OnceValue(func() [numLBKinds]builtLBPolicy {
	var out [numLBKinds]builtLBPolicy
	for k := range numLBKinds {
		out[k].policy, out[k].err = newLoadBalancingPolicy(k)
	}
	return out
})

// newLoadBalancingPolicy builds the load_balancing_policy for kind; see
// loadBalancingPolicy.
func newLoadBalancingPolicy(kind lbKind) (*clusterv3.LoadBalancingPolicy, error) {
	var first []*clusterv3.LoadBalancingPolicy_Policy
	switch kind {
	case lbRoundRobin:
		return nil, nil
	case lbRingHash:
		// XX_HASH is the only hash function gRPC accepts (gRFC A42).
		rh, err := lbEntry("envoy.load_balancing_policies.ring_hash",
			&ringhashv3.RingHash{HashFunction: ringhashv3.RingHash_XX_HASH})
		if err != nil {
			return nil, err
		}
		return &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{rh}}, nil
	case lbLeastRequest:
		lr, err := lbEntry("envoy.load_balancing_policies.least_request", &leastrequestv3.LeastRequest{})
		if err != nil {
			return nil, err
		}
		first = append(first, lr)
	case lbWRR:
		w, err := lbEntry("envoy.load_balancing_policies.client_side_weighted_round_robin", &cswrrv3.ClientSideWeightedRoundRobin{})
		if err != nil {
			return nil, err
		}
		first = append(first, w)
	default:
		return nil, fmt.Errorf("unknown lb policy %d", kind)
	}
	fallback, err := wrrLocalityRoundRobin()
	if err != nil {
		return nil, err
	}
	return &clusterv3.LoadBalancingPolicy{Policies: append(first, fallback)}, nil
}

// wrrLocalityRoundRobin is the A52 form of the ROUND_ROBIN enum.
func wrrLocalityRoundRobin() (*clusterv3.LoadBalancingPolicy_Policy, error) {
	rr, err := lbEntry("envoy.load_balancing_policies.round_robin", &roundrobinv3.RoundRobin{})
	if err != nil {
		return nil, err
	}
	return lbEntry("envoy.load_balancing_policies.wrr_locality", &wrrlocalityv3.WrrLocality{
		EndpointPickingPolicy: &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{rr}},
	})
}

// lbEntry wraps m as one entry of a LoadBalancingPolicy.
func lbEntry(name string, m proto.Message) (*clusterv3.LoadBalancingPolicy_Policy, error) {
	a, err := deterministicAny(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", name, err)
	}
	return &clusterv3.LoadBalancingPolicy_Policy{
		TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: name, TypedConfig: a},
	}, nil
}
