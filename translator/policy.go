package translator

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Per-Service policy annotations. Every one applies to all ports of the
// Service. An invalid value gives a Diagnostic naming the annotation and the
// value, and that one policy keeps its default; the rest of the Service and
// every other Service are translated as usual.
const (
	// AnnotationLBPolicy selects the load-balancing policy: "round_robin"
	// (default), "ring_hash" (needs AnnotationHashHeader), "least_request" or
	// "wrr" (client-side weighted round robin, gRFC A58).
	AnnotationLBPolicy = "switchboard.io/lb-policy"
	// AnnotationHashHeader names the request header ring_hash hashes on
	// (a route hash_policy, gRFC A42).
	AnnotationHashHeader = "switchboard.io/hash-header"
	// AnnotationOutlierDetection turns on outlier detection (gRFC A50) with
	// "key=value" pairs separated by commas; see parseOutlierDetection.
	AnnotationOutlierDetection = "switchboard.io/outlier-detection"
	// AnnotationMaxRequests is the cluster circuit breaker max_requests
	// (gRFC A32): at most this many calls in flight per client.
	AnnotationMaxRequests = "switchboard.io/max-requests"
	// AnnotationTimeout caps every call's deadline with the route's
	// max_stream_duration (gRFC A31), a Go duration such as "2s".
	AnnotationTimeout = "switchboard.io/timeout"
	// AnnotationRetryOn lists the gRPC status codes a call is retried on
	// (gRFC A44), for example "unavailable,cancelled".
	AnnotationRetryOn = "switchboard.io/retry-on"
)

// lbKind is a load-balancing policy that AnnotationLBPolicy can select.
type lbKind int

const (
	lbRoundRobin lbKind = iota
	lbRingHash
	lbLeastRequest
	lbWRR
	numLBKinds // the number of lbKinds, not one of them
)

// policy is the parsed per-Service policy; its zero value is the default
// (round robin, nothing else), which adds nothing to the resources.
type policy struct {
	lb         lbKind
	hashHeader string                      // lowercase; set only with lbRingHash
	outlier    *clusterv3.OutlierDetection // nil: off
	maxRequest uint32                      // 0: client default
	timeout    time.Duration               // 0: none
	retryOn    string                      // "": no retry policy
}

// parsePolicy reads the policy annotations of a Service. It returns the
// policy to apply and one problem (a complete sentence for a Diagnostic) for
// every annotation whose value is invalid; each such annotation is ignored.
// Annotations it does not know are left alone: other parts of Switchboard
// read their own.
func parsePolicy(ann map[string]string) (policy, []string) {
	var p policy
	var problems []string
	bad := func(key, fallback string, err error) {
		problems = append(problems, fmt.Sprintf("annotation %s=%q: %v; using %s", key, ann[key], err, fallback))
	}
	if v, ok := ann[AnnotationLBPolicy]; ok {
		switch strings.TrimSpace(v) {
		case "round_robin":
		case "ring_hash":
			p.lb = lbRingHash
		case "least_request":
			p.lb = lbLeastRequest
		case "wrr":
			p.lb = lbWRR
		default:
			bad(AnnotationLBPolicy, "round_robin", fmt.Errorf("want round_robin, ring_hash, least_request or wrr"))
		}
	}
	if v, ok := ann[AnnotationHashHeader]; ok {
		h, err := parseHashHeader(v)
		switch {
		case err != nil:
			bad(AnnotationHashHeader, "no hash policy", err)
		case p.lb != lbRingHash:
			bad(AnnotationHashHeader, "no hash policy", fmt.Errorf("only used with %s=ring_hash", AnnotationLBPolicy))
		default:
			p.hashHeader = h
		}
	}
	if p.lb == lbRingHash && p.hashHeader == "" {
		// Without a hash policy gRPC hashes every call at random: ring hash
		// would only cost more than round robin.
		problems = append(problems, fmt.Sprintf("annotation %s=ring_hash needs a valid %s; using round_robin", AnnotationLBPolicy, AnnotationHashHeader))
		p.lb = lbRoundRobin
	}
	if v, ok := ann[AnnotationOutlierDetection]; ok {
		od, err := parseOutlierDetection(v)
		if err != nil {
			bad(AnnotationOutlierDetection, "no outlier detection", err)
		} else {
			p.outlier = od
		}
	}
	if v, ok := ann[AnnotationMaxRequests]; ok {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil || n == 0 {
			bad(AnnotationMaxRequests, "the client default (1024)", fmt.Errorf("want an integer from 1 to %d", uint32(1<<32-1)))
		} else {
			p.maxRequest = uint32(n)
		}
	}
	if v, ok := ann[AnnotationTimeout]; ok {
		d, err := parsePositiveDuration(v)
		if err != nil {
			bad(AnnotationTimeout, "no timeout", err)
		} else {
			p.timeout = d
		}
	}
	if v, ok := ann[AnnotationRetryOn]; ok {
		r, err := parseRetryOn(v)
		if err != nil {
			bad(AnnotationRetryOn, "no retries", err)
		} else {
			p.retryOn = r
		}
	}
	return p, problems
}

// parseHashHeader accepts a gRPC metadata key: ASCII letters, digits, '-',
// '_' and '.', read in lower case. Binary headers ("-bin") and the reserved
// "grpc-" prefix are refused: gRPC never hashes on them.
func parseHashHeader(v string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(v))
	if h == "" {
		return "", fmt.Errorf("empty header name")
	}
	for _, c := range []byte(h) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", fmt.Errorf("header name may hold only letters, digits, '-', '_' and '.'")
		}
	}
	if strings.HasSuffix(h, "-bin") || strings.HasPrefix(h, "grpc-") {
		return "", fmt.Errorf("gRPC does not hash on binary (-bin) or reserved (grpc-) headers")
	}
	return h, nil
}

// parsePositiveDuration parses a Go duration ("1.5s", "300ms") that is > 0.
func parsePositiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("not a duration such as 2s or 500ms: %w", err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration must be > 0")
	}
	return d, nil
}

// retryCodes are the retry_on values every gRPC client honours (grpc-go's
// generateRetryConfig, grpc-js-xds's RETRY_CODES), in the order they are
// written back.
func retryCodes() []string {
	return []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}
}

// parseRetryOn accepts a comma-separated list of gRPC status names in either
// spelling ("unavailable", "DEADLINE_EXCEEDED", "deadline-exceeded") and
// returns them in xDS form: lower case, hyphenated, deduplicated, in
// retryCodes order, joined by commas without spaces (grpc-js-xds splits on
// "," and does not trim).
func parseRetryOn(v string) (string, error) {
	known := retryCodes()
	seen := map[string]bool{}
	for _, s := range strings.Split(v, ",") {
		c := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
		if c == "canceled" {
			c = "cancelled" // Go's spelling of the same code
		}
		if !slices.Contains(known, c) {
			return "", fmt.Errorf("unknown or unsupported status %q (want some of %s)", strings.TrimSpace(s), strings.Join(known, ", "))
		}
		seen[c] = true
	}
	var out []string
	for _, c := range known {
		if seen[c] {
			out = append(out, c)
		}
	}
	return strings.Join(out, ","), nil
}

// applyRoute adds the route-level policy (hash policy, max stream duration,
// retry policy) to every route of rc that forwards and has none of its
// own: a mesh route rule's timeouts and retries win over the Service's
// annotations, which fill in what the rule leaves unset.
func (p policy) applyRoute(rc *routev3.RouteConfiguration) {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			a := r.GetRoute()
			if a == nil {
				continue
			}
			if p.hashHeader != "" && len(a.GetHashPolicy()) == 0 {
				a.HashPolicy = []*routev3.RouteAction_HashPolicy{{
					PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
						Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: p.hashHeader},
					},
				}}
			}
			if p.timeout > 0 && a.GetMaxStreamDuration() == nil && a.GetTimeout().AsDuration() == 0 {
				a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{
					MaxStreamDuration: durationpb.New(p.timeout),
				}
			}
			if p.retryOn != "" && a.GetRetryPolicy() == nil {
				// num_retries unset: one retry, the default of gRPC and Envoy.
				a.RetryPolicy = &routev3.RetryPolicy{RetryOn: p.retryOn}
			}
		}
	}
}

// applyCluster adds the cluster-level policy (load balancing, outlier
// detection, circuit breaker) to c. It fails only if a policy message cannot
// be marshalled, which does not happen for the messages built here.
func (p policy) applyCluster(c *clusterv3.Cluster) error {
	lbp, err := p.loadBalancingPolicy()
	if err != nil {
		return err
	}
	c.LoadBalancingPolicy = lbp
	if p.lb == lbRingHash {
		// Also the legacy fields, for clients that do not read
		// load_balancing_policy (gRFC A52 made it optional to honour).
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
			HashFunction: clusterv3.Cluster_RingHashLbConfig_XX_HASH,
		}}
	}
	if p.outlier != nil {
		c.OutlierDetection = p.outlier
	}
	if p.maxRequest > 0 {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:    corev3.RoutingPriority_DEFAULT,
			MaxRequests: wrapperspb.UInt32(p.maxRequest),
		}}}
	}
	return nil
}

// parseOutlierDetection parses "key=value,key=value" into an
// OutlierDetection holding only fields gRPC honours (gRFC A50). Keys are the
// proto fields' JSON names:
//
//	interval, baseEjectionTime, maxEjectionTime     Go durations > 0
//	maxEjectionPercent, enforcingSuccessRate,
//	failurePercentageThreshold,
//	enforcingFailurePercentage                      0..100
//	successRateStdevFactor (thousandths: 1900 = 1.9 standard deviations),
//	successRateMinimumHosts, successRateRequestVolume,
//	failurePercentageMinimumHosts,
//	failurePercentageRequestVolume                  unsigned integers
//
// Unset fields keep the xDS defaults (interval 10s, base ejection 30s, max
// ejection 10 %, success-rate ejection on at 100 % enforcement, failure-
// percentage ejection off). consecutive5xx and the other consecutive_*
// fields are refused: gRPC ignores them, so the annotation would not do what
// it says for gRPC clients.
func parseOutlierDetection(v string) (*clusterv3.OutlierDetection, error) {
	od := &clusterv3.OutlierDetection{}
	seen := map[string]bool{}
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !ok || k == "" || val == "" {
			return nil, fmt.Errorf("%q is not key=value", strings.TrimSpace(kv))
		}
		if seen[k] {
			return nil, fmt.Errorf("key %q given twice", k)
		}
		seen[k] = true
		if err := setOutlierField(od, k, val); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	return od, nil
}

// setOutlierField sets the field of od named by its JSON name k.
func setOutlierField(od *clusterv3.OutlierDetection, k, val string) error {
	dur := func(dst **durationpb.Duration) error {
		d, err := parsePositiveDuration(val)
		if err != nil {
			return err
		}
		*dst = durationpb.New(d)
		return nil
	}
	num := func(dst **wrapperspb.UInt32Value, limit uint64) error {
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil || n > limit {
			return fmt.Errorf("want an integer from 0 to %d", limit)
		}
		*dst = wrapperspb.UInt32(uint32(n))
		return nil
	}
	const pct, any32 = 100, 1<<32 - 1
	switch k {
	case "interval":
		return dur(&od.Interval)
	case "baseEjectionTime":
		return dur(&od.BaseEjectionTime)
	case "maxEjectionTime":
		return dur(&od.MaxEjectionTime)
	case "maxEjectionPercent":
		return num(&od.MaxEjectionPercent, pct)
	case "enforcingSuccessRate":
		return num(&od.EnforcingSuccessRate, pct)
	case "failurePercentageThreshold":
		return num(&od.FailurePercentageThreshold, pct)
	case "enforcingFailurePercentage":
		return num(&od.EnforcingFailurePercentage, pct)
	case "successRateStdevFactor":
		return num(&od.SuccessRateStdevFactor, any32)
	case "successRateMinimumHosts":
		return num(&od.SuccessRateMinimumHosts, any32)
	case "successRateRequestVolume":
		return num(&od.SuccessRateRequestVolume, any32)
	case "failurePercentageMinimumHosts":
		return num(&od.FailurePercentageMinimumHosts, any32)
	case "failurePercentageRequestVolume":
		return num(&od.FailurePercentageRequestVolume, any32)
	case "consecutive5xx", "consecutiveGatewayFailure", "consecutiveLocalOriginFailure":
		return fmt.Errorf("not honoured by gRPC clients (gRFC A50); use failurePercentageThreshold and enforcingFailurePercentage")
	default:
		return fmt.Errorf("unknown key (see README: Per-Service policy)")
	}
}
