package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Shape is how the load clients subscribe.
type Shape string

// The client shapes.
const (
	// ShapeGRPC clients subscribe by name to the clusters and assignments
	// of their Services, as a proxyless gRPC client does (client).
	ShapeGRPC Shape = "grpc"
	// ShapeEnvoy clients subscribe as an Envoy sidecar does (envoyClient).
	ShapeEnvoy Shape = "envoy"
)

// ParseShape returns the Shape named s.
func ParseShape(s string) (Shape, error) {
	switch Shape(s) {
	case ShapeGRPC, ShapeEnvoy:
		return Shape(s), nil
	}
	return "", fmt.Errorf("unknown client shape %q (want grpc or envoy)", s)
}

// addition is one added Service the driver waits on: it is done when every
// client has ACKed the Service's cluster, its assignment and a route
// configuration that holds its virtual host.
type addition struct {
	seq       int
	cluster   string
	vhost     []byte // the virtual host's name field as it is on the wire
	remaining atomic.Int64
	done      chan struct{}
	end       atomic.Int64
}

// envoyClient is an ADS client, SotW or delta, that subscribes as Envoy
// does: wildcard CDS and LDS, then EDS for every EDS cluster and RDS for
// every rds route_config_name of the HttpConnectionManagers of its
// listeners, re-subscribing when those sets change, and ACKing every
// response. Its node has user_agent_name "envoy" and metadata NAMESPACE.
// It keeps an 8-byte digest per resource, not the resources, so that 1000
// of them fit beside the server. A change is seen when the changed
// assignment arrives carrying the change's new address; an addition when
// the new cluster, its assignment (Envoy warms a new EDS cluster until
// that arrives) and a route configuration naming its virtual host have
// all arrived. For internal/envoysim's Client, which checks and routes
// with what it holds, this keeps too much per client.
type envoyClient struct {
	adsStream
	namespace string
	hash      hasher
	current   *atomic.Pointer[change]
	adding    *atomic.Pointer[addition]
	// wantClusters is how many clusters the world has at the start: the
	// client is synced when it holds them, and every assignment and route
	// configuration it has subscribed to.
	wantClusters int

	mu        sync.Mutex
	listeners map[string]uint64
	rdsOf     map[string][]string // listener → route configuration names
	clusters  map[string]uint64
	edsOf     map[string]string // EDS cluster → assignment name
	routes    map[string]uint64
	assigns   map[string]uint64
	subs      map[string][]string // EDS/RDS → subscribed names, sorted
	versions  map[string]string   // SotW: last ACKed version by type
	nonces    map[string]string
	lastSeq   int // last change this client reported
	changeSeq int // last change whose new address this client has seen
	addSeq    int // addition the flags below are for
	addCDS    bool
	addEDS    bool
	addRDS    bool
	addDone   int // last addition this client reported
	isSynced  bool
}

func newEnvoyClient(id int, namespace string, wantClusters int, h hasher, current *atomic.Pointer[change], adding *atomic.Pointer[addition]) *envoyClient {
	return &envoyClient{
		adsStream: adsStream{id: id, done: make(chan struct{}), synced: make(chan struct{})}, namespace: namespace, hash: h, current: current, adding: adding, wantClusters: wantClusters,
		listeners: map[string]uint64{}, rdsOf: map[string][]string{},
		clusters: map[string]uint64{}, edsOf: map[string]string{},
		routes: map[string]uint64{}, assigns: map[string]uint64{},
		subs: map[string][]string{}, versions: map[string]string{}, nonces: map[string]string{},
	}
}

// start connects and sends the wildcard CDS and LDS requests (CDS first,
// as Envoy does); the client runs until ctx ends or the stream fails.
func (c *envoyClient) start(ctx context.Context, addr string) error {
	if err := c.dial(addr); err != nil {
		return fmt.Errorf("envoy client %d: %w", c.id, err)
	}
	node := &corev3.Node{
		Id:            "sidecar-" + strconv.Itoa(c.id),
		UserAgentName: "envoy",
		Metadata:      &structpb.Struct{Fields: map[string]*structpb.Value{"NAMESPACE": structpb.NewStringValue(c.namespace)}},
		Locality:      &corev3.Locality{},
	}
	if err := c.open(ctx); err != nil {
		return fmt.Errorf("envoy client %d: %w", c.id, err)
	}
	var err error
	for _, t := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		if c.delta {
			err = c.sendDelta(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: t})
		} else {
			err = c.send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: t})
		}
		if err != nil {
			_ = c.conn.Close()
			return err
		}
	}
	go c.run(c.recvSotW, c.recvDelta)
	return nil
}

func (c *envoyClient) recvSotW() error {
	resp, err := c.stream.Recv()
	if err != nil {
		return err
	}
	c.bytesDown.Add(int64(proto.Size(resp)))
	c.responses.Add(1)
	t := resp.GetTypeUrl()
	// SotW LDS and CDS responses carry every resource: what is not in one
	// is gone.
	if err := c.apply(t, resp.GetResources(), nil, wildcardType(t)); err != nil {
		return err
	}
	c.mu.Lock()
	c.versions[t], c.nonces[t] = resp.GetVersionInfo(), resp.GetNonce()
	names := c.subs[t]
	c.mu.Unlock()
	if err := c.send(&discoveryv3.DiscoveryRequest{
		TypeUrl: t, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: names,
	}); err != nil {
		return err
	}
	c.report(t)
	return c.resubscribe(t)
}

func (c *envoyClient) recvDelta() error {
	resp, err := c.dstream.Recv()
	if err != nil {
		return err
	}
	c.bytesDown.Add(int64(proto.Size(resp)))
	c.responses.Add(1)
	t := resp.GetTypeUrl()
	anys := make([]*anypb.Any, 0, len(resp.GetResources()))
	for _, r := range resp.GetResources() {
		if a := r.GetResource(); a != nil {
			anys = append(anys, a)
		}
	}
	if err := c.apply(t, anys, resp.GetRemovedResources(), false); err != nil {
		return err
	}
	if err := c.sendDelta(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}); err != nil {
		return err
	}
	c.report(t)
	return c.resubscribe(t)
}

// apply stores the resources of one response of type t; replace drops the
// held resources of the type that are not in it.
func (c *envoyClient) apply(t string, resources []*anypb.Any, removed []string, replace bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	held := map[string]map[string]uint64{
		resourcev3.ListenerType: c.listeners, resourcev3.ClusterType: c.clusters,
		resourcev3.RouteType: c.routes, resourcev3.EndpointType: c.assigns,
	}[t]
	if held == nil {
		return fmt.Errorf("envoy client %d: response of unexpected type %s", c.id, t)
	}
	seen := make(map[string]bool, len(resources))
	for _, a := range resources {
		name, err := clusterName(a.GetValue()) // field 1 is the name of all four types
		if err != nil {
			return fmt.Errorf("envoy client %d: %s: %w", c.id, t, err)
		}
		seen[name] = true
		d := c.hash.bytes(a.GetValue())
		if old, ok := held[name]; ok && old == d {
			continue
		}
		held[name] = d
		if err := c.learn(t, name, a); err != nil {
			return err
		}
	}
	for _, name := range removed {
		delete(held, name)
		delete(c.rdsOf, name)
		delete(c.edsOf, name)
	}
	if replace {
		for name := range held {
			if !seen[name] {
				delete(held, name)
				delete(c.rdsOf, name)
				delete(c.edsOf, name)
			}
		}
	}
	c.checkChangeLocked(t, resources)
	if !c.isSynced && c.syncedLocked() {
		c.isSynced = true
		close(c.synced)
	}
	return nil
}

// learn reads what the client follows from a new or changed listener
// (its rds names) or cluster (its EDS assignment). Must be called with
// c.mu held.
func (c *envoyClient) learn(t, name string, a *anypb.Any) error {
	switch t {
	case resourcev3.ClusterType:
		var cl clusterv3.Cluster
		if err := a.UnmarshalTo(&cl); err != nil {
			return fmt.Errorf("envoy client %d: cluster %s: %w", c.id, name, err)
		}
		delete(c.edsOf, name)
		if cl.GetType() == clusterv3.Cluster_EDS {
			c.edsOf[name] = cmpOr(cl.GetEdsClusterConfig().GetServiceName(), name)
		}
	case resourcev3.ListenerType:
		var l listenerv3.Listener
		if err := a.UnmarshalTo(&l); err != nil {
			return fmt.Errorf("envoy client %d: listener %s: %w", c.id, name, err)
		}
		var rds []string
		for _, fc := range append(slices.Clone(l.GetFilterChains()), l.GetDefaultFilterChain()) {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().MessageIs(&hcm) && f.GetTypedConfig().UnmarshalTo(&hcm) == nil {
					if n := hcm.GetRds().GetRouteConfigName(); n != "" {
						rds = append(rds, n)
					}
				}
			}
		}
		c.rdsOf[name] = rds
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// wanted returns the sorted names the client follows of type t (EDS or
// RDS). Must be called with c.mu held.
func (c *envoyClient) wantedLocked(t string) []string {
	set := map[string]struct{}{}
	if t == resourcev3.EndpointType {
		for _, n := range c.edsOf {
			set[n] = struct{}{}
		}
	} else {
		for _, ns := range c.rdsOf {
			for _, n := range ns {
				set[n] = struct{}{}
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// resubscribe follows a CDS or LDS response with the EDS or RDS
// subscription it implies, when that changed.
func (c *envoyClient) resubscribe(t string) error {
	next := map[string]string{resourcev3.ClusterType: resourcev3.EndpointType, resourcev3.ListenerType: resourcev3.RouteType}[t]
	if next == "" {
		return nil
	}
	c.mu.Lock()
	prev, want := c.subs[next], c.wantedLocked(next)
	_, subscribed := c.subs[next]
	if subscribed && slices.Equal(prev, want) {
		c.mu.Unlock()
		return nil
	}
	c.subs[next] = want
	version, nonce := c.versions[next], c.nonces[next]
	if !c.isSynced && c.syncedLocked() {
		c.isSynced = true
		close(c.synced)
	}
	c.mu.Unlock()
	if !c.delta {
		return c.send(&discoveryv3.DiscoveryRequest{TypeUrl: next, VersionInfo: version, ResponseNonce: nonce, ResourceNames: want})
	}
	var add, drop []string
	for _, n := range want {
		if _, ok := slices.BinarySearch(prev, n); !ok {
			add = append(add, n)
		}
	}
	for _, n := range prev {
		if _, ok := slices.BinarySearch(want, n); !ok {
			drop = append(drop, n)
		}
	}
	if len(add) == 0 && len(drop) == 0 {
		return nil
	}
	return c.sendDelta(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: next, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: drop})
}

// syncedLocked reports whether the client holds the world: listeners, the
// world's clusters, and every assignment and route configuration it
// follows. Must be called with c.mu held.
func (c *envoyClient) syncedLocked() bool {
	if len(c.listeners) == 0 || len(c.clusters) < c.wantClusters {
		return false
	}
	for _, t := range []string{resourcev3.EndpointType, resourcev3.RouteType} {
		held := c.assigns
		if t == resourcev3.RouteType {
			held = c.routes
		}
		want, ok := c.subs[t]
		if !ok && len(c.wantedLocked(t)) > 0 {
			return false
		}
		for _, n := range want {
			if _, ok := held[n]; !ok {
				return false
			}
		}
	}
	return true
}

// checkChangeLocked marks what a response brings of the current change
// (the assignment with its new address) or addition (its cluster, its
// virtual host). The client reports after its ACK is sent (report). Must
// be called with c.mu held.
func (c *envoyClient) checkChangeLocked(t string, resources []*anypb.Any) {
	if a := c.adding.Load(); a != nil && a.seq != c.addSeq {
		c.addSeq, c.addCDS, c.addEDS, c.addRDS = a.seq, false, false, false
	}
	a := c.adding.Load()
	ch := c.current.Load()
	for _, r := range resources {
		switch {
		case t == resourcev3.EndpointType:
			name, _ := clusterName(r.GetValue())
			if ch != nil && name == ch.name && bytes.Contains(r.GetValue(), ch.addr) {
				c.changeSeq = ch.seq
			}
			if a != nil && name == a.cluster {
				c.addEDS = true
			}
		case t == resourcev3.ClusterType && a != nil:
			if name, _ := clusterName(r.GetValue()); name == a.cluster {
				c.addCDS = true
			}
		case t == resourcev3.RouteType && a != nil:
			if bytes.Contains(r.GetValue(), a.vhost) {
				c.addRDS = true
			}
		}
	}
}

// report tells the driver, after the ACK of a response of type t, that
// this client has converged on the current change or addition.
func (c *envoyClient) report(t string) {
	now := time.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.current.Load(); ch != nil && t == resourcev3.EndpointType && c.lastSeq != ch.seq && c.changeSeq == ch.seq {
		c.lastSeq = ch.seq
		if ch.remaining.Add(-1) == 0 {
			ch.end.Store(now)
			close(ch.done)
		}
	}
	if a := c.adding.Load(); a != nil && a.seq == c.addSeq && c.addDone != a.seq && c.addCDS && c.addEDS && c.addRDS {
		c.addDone = a.seq
		if a.remaining.Add(-1) == 0 {
			a.end.Store(now)
			close(a.done)
		}
	}
}

// vhostField is the name field (1) of a VirtualHost named name, as
// marshalled: a route configuration holds the Service's virtual host when
// its bytes contain this (a route's cluster, field 1 of RouteAction, has
// the same bytes and the same name).
func vhostField(name string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), name)
}

// addressField is the address field (2) of a SocketAddress, as marshalled.
func addressField(ip string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), ip)
}

// digests returns the client's assignment and cluster digests by name.
func (c *envoyClient) digests() (assigns, clusters map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.assigns), maps.Clone(c.clusters)
}
