// Package envoysim models, for tests, what an Envoy does with the resources a
// control plane sends it: which ones it would reject when it loads them
// (Check), where it would send a connection (Config.Route), what its DNS
// filter would answer (Config.Resolve), and how it subscribes over ADS
// (Dial). No Envoy binary is needed; every rule cites the Envoy source file it
// models (paths in envoyproxy/envoy; the rules collected from Envoy's source).
//
// It is a test-support library: it panics on nothing, allocates freely, and
// trades speed for clarity.
package envoysim

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Config is the set of dynamic resources one Envoy holds, each map keyed by
// resource name. A Config is a plain value: nothing in this package mutates a
// Config it did not build, and Clone gives an independent deep copy.
type Config struct {
	Listeners   map[string]*listenerv3.Listener
	Routes      map[string]*routev3.RouteConfiguration
	Clusters    map[string]*clusterv3.Cluster
	Assignments map[string]*endpointv3.ClusterLoadAssignment
	// LookupHost, when set, stands for Envoy's own resolver: the addresses
	// a STRICT_DNS or LOGICAL_DNS cluster's host name resolves to (what
	// its hosts are, and so what the DNS filter answers from such a
	// cluster). Nil: such hosts have no address.
	LookupHost   func(host string) []netip.Addr
	dupListeners []string // names seen twice by FromResources; Check reports them
}

// NewConfig returns an empty Config with all maps allocated.
func NewConfig() *Config {
	return &Config{
		Listeners:   map[string]*listenerv3.Listener{},
		Routes:      map[string]*routev3.RouteConfiguration{},
		Clusters:    map[string]*clusterv3.Cluster{},
		Assignments: map[string]*endpointv3.ClusterLoadAssignment{},
	}
}

// FromResources decodes Any-wrapped Listener, RouteConfiguration, Cluster and
// ClusterLoadAssignment resources (as they arrive in a DiscoveryResponse) into
// a Config. An Any of another type, or one that does not unmarshal, is an
// error naming its position and type URL. A listener name given twice is kept
// once and reported by Check as Envoy's "duplicate listener X found"
// (source/common/listener_manager/lds_api.cc onConfigUpdate).
func FromResources(resources []*anypb.Any) (*Config, error) {
	c := NewConfig()
	for i, a := range resources {
		m, err := decode(a)
		if err != nil {
			return nil, fmt.Errorf("resource %d: %w", i, err)
		}
		c.Add(m)
	}
	return c, nil
}

// decode unmarshals one xDS resource of the four types a Config holds.
func decode(a *anypb.Any) (proto.Message, error) {
	var m proto.Message
	switch a.GetTypeUrl() {
	case resourcev3.ListenerType:
		m = &listenerv3.Listener{}
	case resourcev3.RouteType:
		m = &routev3.RouteConfiguration{}
	case resourcev3.ClusterType:
		m = &clusterv3.Cluster{}
	case resourcev3.EndpointType:
		m = &endpointv3.ClusterLoadAssignment{}
	default:
		return nil, fmt.Errorf("unexpected type %q", a.GetTypeUrl())
	}
	if err := a.UnmarshalTo(m); err != nil {
		return nil, fmt.Errorf("unmarshal %s: %w", a.GetTypeUrl(), err)
	}
	return m, nil
}

// Add stores one resource under its name (Listener, RouteConfiguration,
// Cluster or ClusterLoadAssignment; other messages are ignored). It replaces
// a route configuration, cluster or assignment of the same name; a listener of
// the same name is recorded as a duplicate, which Check reports.
func (c *Config) Add(m proto.Message) {
	switch r := m.(type) {
	case *listenerv3.Listener:
		if _, ok := c.Listeners[r.GetName()]; ok {
			c.dupListeners = append(c.dupListeners, r.GetName())
		}
		c.Listeners[r.GetName()] = r
	case *routev3.RouteConfiguration:
		c.Routes[r.GetName()] = r
	case *clusterv3.Cluster:
		c.Clusters[r.GetName()] = r
	case *endpointv3.ClusterLoadAssignment:
		c.Assignments[r.GetClusterName()] = r
	}
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	out := &Config{
		Listeners:    cloneMap(c.Listeners),
		Routes:       cloneMap(c.Routes),
		Clusters:     cloneMap(c.Clusters),
		Assignments:  cloneMap(c.Assignments),
		LookupHost:   c.LookupHost,
		dupListeners: append([]string(nil), c.dupListeners...),
	}
	return out
}

// shallowClone returns a Config with maps of its own holding c's messages.
func (c *Config) shallowClone() *Config {
	return &Config{
		Listeners:    maps.Clone(c.Listeners),
		Routes:       maps.Clone(c.Routes),
		Clusters:     maps.Clone(c.Clusters),
		Assignments:  maps.Clone(c.Assignments),
		LookupHost:   c.LookupHost,
		dupListeners: slices.Clone(c.dupListeners),
	}
}

func cloneMap[M proto.Message](in map[string]M) map[string]M {
	out := maps.Clone(in)
	if out == nil {
		out = map[string]M{}
	}
	for k, v := range out {
		out[k] = proto.Clone(v).(M)
	}
	return out
}
