package envoysim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Nack is one rejected response: its type, nonce and the error_detail sent.
type Nack struct {
	TypeURL, Nonce, Detail string
}

// Client is an Envoy-like ADS client (ENVOY.md §4): wildcard LDS and CDS,
// then EDS for every EDS cluster it holds and RDS for every rds
// route_config_name of its listeners, re-subscribing as those sets change.
// A response is applied resource by resource: what passes CheckResource is
// kept and the response is ACKed; if any resource fails, the good ones are
// still kept (as LDS and CDS do: source/common/listener_manager/lds_api.cc,
// source/common/upstream/cds_api_helper.cc) and the response is NACKed with
// the errors as error_detail. Safe for concurrent use.
type Client struct {
	conn   *grpc.ClientConn
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	cfg     *Config
	nacks   []Nack
	traffic map[string]Traffic // by type URL (traffic.go)
	err     error              // why the stream ended
	changed chan struct{}      // closed and replaced after every response
}

// Dial connects to the ADS server at addr (plaintext unless opts say
// otherwise) and starts subscribing as Envoy does with node (its
// user_agent_name is set to "envoy" when empty, as source/server/server.cc
// does). delta selects DeltaAggregatedResources over
// StreamAggregatedResources. Close releases it.
func Dial(ctx context.Context, addr string, node *corev3.Node, delta bool, opts ...grpc.DialOption) (*Client, error) {
	node = proto.Clone(node).(*corev3.Node)
	if node.GetUserAgentName() == "" {
		node.UserAgentName = "envoy"
	}
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("envoysim: dial %s: %w", addr, err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	c := &Client{conn: conn, cancel: cancel, done: make(chan struct{}), cfg: NewConfig(), changed: make(chan struct{})}
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	var run func() error
	if delta {
		var st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
		if st, err = ads.DeltaAggregatedResources(sctx); err == nil {
			run, err = c.startDelta(st, node)
		}
	} else {
		var st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
		if st, err = ads.StreamAggregatedResources(sctx); err == nil {
			run, err = c.startSotW(st, node)
		}
	}
	if err != nil {
		cancel()
		conn.Close()
		return nil, fmt.Errorf("envoysim: ADS stream (delta %t): %w", delta, err)
	}
	go func() {
		err := run()
		c.mu.Lock()
		c.err = err
		close(c.changed)
		c.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// Snapshot returns a deep copy of the resources the client holds now.
func (c *Client) Snapshot() *Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.Clone()
}

// Nacks returns every NACK the client has sent, oldest first.
func (c *Client) Nacks() []Nack {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.nacks)
}

// WaitFor returns nil as soon as pred holds for the client's resources,
// checking now and after every response; it returns an error when ctx ends
// or the stream ends first. pred gets the client's own Config, which no
// response changes (each builds a new one), and must not change it.
func (c *Client) WaitFor(ctx context.Context, pred func(*Config) bool) error {
	for {
		c.mu.Lock()
		snap, ch, err := c.cfg, c.changed, c.err
		c.mu.Unlock()
		if pred(snap) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("envoysim: stream ended: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("envoysim: waiting: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Close ends the stream and the connection and waits for the receive loop.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	return c.conn.Close()
}

// apply decodes and stores resources of typeURL, removing the named ones,
// and returns the error_detail for a NACK ("" for an ACK). replace drops
// every held resource of the type first (SotW LDS/CDS: the response is the
// whole set).
func (c *Client) apply(typeURL, nonce string, resources []*anypb.Any, removed []string, replace bool) string {
	var errs []error
	var good []proto.Message
	for i, a := range resources {
		if a.GetTypeUrl() != typeURL {
			errs = append(errs, fmt.Errorf("resource %d: type %s in a %s response", i, a.GetTypeUrl(), typeURL))
			continue
		}
		m, err := decode(a)
		if err == nil {
			err = CheckResource(m)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("resource %d: %w", i, err))
			continue
		}
		good = append(good, m)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Copy on write: a response builds a new Config sharing the messages
	// of the old (no message is changed once decoded), so that what
	// WaitFor handed out stays as it was.
	next := c.cfg.shallowClone()
	next.dupListeners = nil
	if replace {
		clearType(next, typeURL)
	}
	for _, n := range removed {
		removeName(next, typeURL, n)
	}
	seen := map[string]bool{}
	for _, m := range good {
		// A listener named again in a later response replaces the one
		// held; named twice in one response, it is a duplicate.
		if l, ok := m.(*listenerv3.Listener); ok && !seen[l.GetName()] {
			seen[l.GetName()] = true
			delete(next.Listeners, l.GetName())
		}
		next.Add(m)
	}
	c.cfg = next
	close(c.changed)
	c.changed = make(chan struct{})
	if len(errs) == 0 {
		return ""
	}
	detail := errors.Join(errs...).Error()
	c.nacks = append(c.nacks, Nack{TypeURL: typeURL, Nonce: nonce, Detail: detail})
	return detail
}

func clearType(c *Config, typeURL string) {
	switch typeURL {
	case resourcev3.ListenerType:
		clear(c.Listeners)
	case resourcev3.ClusterType:
		clear(c.Clusters)
	}
}

// removeName acts on removals for LDS and CDS only: RDS and EDS ignore
// removed_resources (ENVOY.md §4: rds_route_config_subscription.cc, eds.cc).
func removeName(c *Config, typeURL, name string) {
	switch typeURL {
	case resourcev3.ListenerType:
		delete(c.Listeners, name)
	case resourcev3.ClusterType:
		delete(c.Clusters, name)
	}
}

// subscription is the names one non-wildcard type should be subscribed to.
type subscription struct {
	typeURL string
	names   []string
}

// wanted returns the RDS and EDS names the held listeners and clusters
// need, sorted; it also drops held routes and assignments nobody needs any
// more (Envoy unsubscribes and forgets them).
func (c *Client) wanted() []subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, e := map[string]bool{}, map[string]bool{}
	for _, l := range c.cfg.Listeners {
		walk(l, "", func(_ string, m proto.Message) {
			if h, ok := hcmOf(m); ok && h.GetRds().GetRouteConfigName() != "" {
				r[h.GetRds().GetRouteConfigName()] = true
			}
		})
	}
	for _, cl := range c.cfg.Clusters {
		if cl.GetType() == clusterv3.Cluster_EDS {
			e[edsName(cl)] = true
		}
	}
	for n := range c.cfg.Routes {
		if !r[n] {
			delete(c.cfg.Routes, n)
		}
	}
	for n := range c.cfg.Assignments {
		if !e[n] {
			delete(c.cfg.Assignments, n)
		}
	}
	return []subscription{{resourcev3.RouteType, sortedKeys(r)}, {resourcev3.EndpointType, sortedKeys(e)}}
}

func nackStatus(detail string) *statuspb.Status {
	if detail == "" {
		return nil
	}
	return &statuspb.Status{Code: int32(codes.InvalidArgument), Message: detail}
}
