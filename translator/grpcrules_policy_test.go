package translator

// gRPC client-side rules for the per-Service policy fields (policy.go,
// cds_lbpolicy.go) and the appProtocol record (cds.go), mirroring grpc-go
// v1.85 (unmarshal_cds.go: validateClusterAndConstructClusterUpdate,
// outlierConfigFromCluster, circuitBreakersFromCluster,
// validateAndConstructMetadata; xdslbregistry/converter; unmarshal_rds.go:
// hashPoliciesProtoToSlice, the max_stream_duration block of
// routesProtoToSlice, generateRetryConfig) plus the grpc-js-xds 1.14 rules
// measured where they are stricter ("ours").

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	cswrrv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	ringhashv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/ring_hash/v3"
	roundrobinv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	wrrlocalityv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/wrr_locality/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

const lbTypeURLPrefix = "type.googleapis.com/envoy.extensions.load_balancing_policies."

// knownClusterFields are the Cluster fields the translator may set and this
// file (or grpcCluster) checks; any other set field is "unchecked".
func knownClusterFields() []protoreflect.Name {
	return []protoreflect.Name{
		"name", "type", "eds_cluster_config", "connect_timeout", "lb_policy",
		"ring_hash_lb_config", "least_request_lb_config", "load_balancing_policy", "outlier_detection",
		"circuit_breakers", "metadata", "typed_extension_protocol_options", "lrs_server",
		"load_assignment", // LOGICAL_DNS only; see grpcCluster
	}
}

// grpcClusterPolicy checks the policy fields of c.
func grpcClusterPolicy(c *clusterv3.Cluster) error {
	known := knownClusterFields()
	var errs []error
	c.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(known, fd.Name()) {
			errs = append(errs, fmt.Errorf("unchecked: cluster field %s", fd.Name()))
		}
		return true
	})
	if lbp := c.GetLoadBalancingPolicy(); lbp != nil {
		if err := grpcGoLBPolicy(lbp, 0); err != nil {
			errs = append(errs, fmt.Errorf("error converting LoadBalancingPolicy: %w", err))
		}
		if err := grpcJSLBPolicy(lbp); err != nil {
			errs = append(errs, fmt.Errorf("grpc-js-xds: load_balancing_policy parsing failed: %w", err))
		}
	}
	errs = append(errs, grpcOutlier(c.GetOutlierDetection()))
	// circuitBreakersFromCluster reads max_requests of the DEFAULT threshold
	// only; ours: send nothing a client would ignore.
	for _, th := range c.GetCircuitBreakers().GetThresholds() {
		if th.GetPriority() != corev3.RoutingPriority_DEFAULT || th.GetMaxRequests() == nil ||
			th.GetMaxConnections() != nil || th.GetMaxPendingRequests() != nil || th.GetMaxRetries() != nil {
			errs = append(errs, errors.New("circuit breaker threshold other than DEFAULT max_requests is ignored by gRPC"))
		}
	}
	if len(c.GetCircuitBreakers().GetPerHostThresholds()) != 0 {
		errs = append(errs, errors.New("unchecked: per_host_thresholds"))
	}
	// validateAndConstructMetadata NACKs a typed_filter_metadata entry its
	// converter cannot parse; filter_metadata Structs are kept as they are.
	if len(c.GetMetadata().GetTypedFilterMetadata()) != 0 {
		errs = append(errs, errors.New("unchecked: typed_filter_metadata"))
	}
	// gRPC clients do not read typed_extension_protocol_options; ours: only
	// the Envoy HTTP options, and they must parse.
	for k, a := range c.GetTypedExtensionProtocolOptions() {
		if k != httpProtocolOptionsName {
			errs = append(errs, fmt.Errorf("unchecked: typed_extension_protocol_options[%q]", k))
			continue
		}
		if err := a.UnmarshalTo(&httpv3.HttpProtocolOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("HttpProtocolOptions: %w", err))
		}
	}
	return errors.Join(errs...)
}

// grpcGoLBPolicy mirrors xdslbregistry.ConvertToServiceConfig and the
// converters of the policies we send: the first entry grpc-go knows is used
// and must convert and parse.
func grpcGoLBPolicy(lbp *clusterv3.LoadBalancingPolicy, depth int) error {
	if depth > 15 {
		return errors.New("lb policy exceeds max depth supported: 16 layers")
	}
	for _, p := range lbp.GetPolicies() {
		tc := p.GetTypedExtensionConfig().GetTypedConfig()
		switch strings.TrimPrefix(tc.GetTypeUrl(), lbTypeURLPrefix) {
		case "ring_hash.v3.RingHash":
			rh := &ringhashv3.RingHash{}
			if err := tc.UnmarshalTo(rh); err != nil {
				return err
			}
			if rh.GetHashFunction() != ringhashv3.RingHash_XX_HASH {
				return fmt.Errorf("unsupported ring_hash hash function %v", rh.GetHashFunction())
			}
			return nil
		case "least_request.v3.LeastRequest":
			lr := &leastrequestv3.LeastRequest{}
			if err := tc.UnmarshalTo(lr); err != nil {
				return err
			}
			if cc := lr.GetChoiceCount(); cc != nil && cc.GetValue() < 2 {
				return errors.New("least-request: choiceCount must be >= 2")
			}
			return nil
		case "round_robin.v3.RoundRobin":
			return tc.UnmarshalTo(&roundrobinv3.RoundRobin{})
		case "client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin":
			w := &cswrrv3.ClientSideWeightedRoundRobin{}
			if err := tc.UnmarshalTo(w); err != nil {
				return err
			}
			if proto.Size(w) != 0 {
				return errors.New("unchecked: client_side_weighted_round_robin settings")
			}
			return nil
		case "wrr_locality.v3.WrrLocality":
			wl := &wrrlocalityv3.WrrLocality{}
			if err := tc.UnmarshalTo(wl); err != nil {
				return err
			}
			return grpcGoLBPolicy(wl.GetEndpointPickingPolicy(), depth+1)
		}
	}
	return errors.New("no supported policy found in policy list")
}

// grpcJSLBPolicy mirrors grpc-js-xds 1.14's convertToLoadBalancingConfig
// with its default registry (ring_hash, round_robin, wrr_locality; not
// least_request; client_side_weighted_round_robin and pick_first only behind
// environment variables): the first known entry is used, and an error inside
// it (for example a wrr_locality child it cannot use) rejects the cluster.
func grpcJSLBPolicy(lbp *clusterv3.LoadBalancingPolicy) error {
	for _, p := range lbp.GetPolicies() {
		tc := p.GetTypedExtensionConfig().GetTypedConfig()
		switch strings.TrimPrefix(tc.GetTypeUrl(), lbTypeURLPrefix) {
		case "ring_hash.v3.RingHash", "round_robin.v3.RoundRobin":
			return nil
		case "wrr_locality.v3.WrrLocality":
			wl := &wrrlocalityv3.WrrLocality{}
			if err := tc.UnmarshalTo(wl); err != nil {
				return err
			}
			return grpcJSLBPolicy(wl.GetEndpointPickingPolicy())
		}
	}
	return errors.New("No registered LB policy found in list")
}

// grpcOutlier mirrors outlierConfigFromCluster (gRFC A50 validation).
func grpcOutlier(od *clusterv3.OutlierDetection) error {
	if od == nil {
		return nil
	}
	for name, d := range map[string]*durationpb.Duration{
		"interval": od.GetInterval(), "base_ejection_time": od.GetBaseEjectionTime(), "max_ejection_time": od.GetMaxEjectionTime(),
	} {
		if d == nil {
			continue
		}
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return fmt.Errorf("outlier_detection.%s is invalid or negative", name)
		}
	}
	for name, v := range map[string]interface{ GetValue() uint32 }{
		"max_ejection_percent": od.GetMaxEjectionPercent(), "enforcing_success_rate": od.GetEnforcingSuccessRate(),
		"failure_percentage_threshold": od.GetFailurePercentageThreshold(), "enforcing_failure_percentage": od.GetEnforcingFailurePercentage(),
	} {
		if v.GetValue() > 100 {
			return fmt.Errorf("outlier_detection.%s = %d; must be <= 100", name, v.GetValue())
		}
	}
	// ours: fields outside A50 are ignored by gRPC.
	if od.GetConsecutive_5Xx() != nil || od.GetConsecutiveGatewayFailure() != nil || od.GetConsecutiveLocalOriginFailure() != nil ||
		od.GetEnforcingConsecutive_5Xx() != nil || od.GetSplitExternalLocalOriginErrors() {
		return errors.New("outlier_detection field outside gRFC A50 is ignored by gRPC")
	}
	return nil
}

// grpcRoutePolicy mirrors hashPoliciesProtoToSlice, the max_stream_duration
// block of routesProtoToSlice and the retry_on parsing of
// generateRetryConfig and grpc-js-xds.
func grpcRoutePolicy(a *routev3.RouteAction) error {
	for _, hp := range a.GetHashPolicy() {
		h := hp.GetHeader()
		if h == nil {
			// Ignored by grpc-go (ours: fail, a policy we send must be used).
			return fmt.Errorf("hash policy %T is ignored by gRPC", hp.GetPolicySpecifier())
		}
		if rr := h.GetRegexRewrite(); rr != nil {
			if _, err := regexp.Compile(rr.GetPattern().GetRegex()); err != nil {
				return fmt.Errorf("hash policy contains an invalid regex %q", rr.GetPattern().GetRegex())
			}
		}
		if h.GetHeaderName() == "" || strings.HasSuffix(h.GetHeaderName(), "-bin") {
			return fmt.Errorf("hash policy header %q is never hashed", h.GetHeaderName()) // ours
		}
	}
	if msd := a.GetMaxStreamDuration(); msd != nil {
		// grpc_timeout_header_max takes precedence over max_stream_duration.
		if msd.GetGrpcTimeoutHeaderMax() != nil || msd.GetMaxStreamDuration() == nil {
			return errors.New("max_stream_duration: only max_stream_duration is checked")
		}
		if err := msd.GetMaxStreamDuration().CheckValid(); err != nil || msd.GetMaxStreamDuration().AsDuration() <= 0 {
			return errors.New("max_stream_duration must be a valid duration > 0") // ours
		}
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		// generateRetryConfig ignores unknown codes and, with none left, does
		// not retry at all; grpc-js-xds splits on "," without trimming.
		// ours: every code must be one both honour.
		for _, c := range strings.Split(rp.GetRetryOn(), ",") {
			if !slices.Contains(retryCodes(), c) {
				return fmt.Errorf("retry_on %q: %q is ignored by gRPC", rp.GetRetryOn(), c)
			}
		}
	}
	return nil
}
