package loadtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// change is one endpoint change the driver waits on: it is done when every
// affected client has ACKed a response carrying the assignment with digest.
type change struct {
	seq       int
	name      string
	digest    uint64
	addr      []byte // for Envoy clients: addressField of the new address
	remaining atomic.Int64
	done      chan struct{}
	end       atomic.Int64 // unix nanos of the last ACK
}

// client is a minimal ADS client, SotW or delta, that behaves like a
// proxyless gRPC client after it has its listener and route: it subscribes by name to the
// clusters of its Services (CDS), then to the assignments those clusters
// name (EDS), and ACKs every response. It keeps an 8-byte digest per
// resource, counts bytes (proto.Size) and responses, and reports to the
// current change, or to the churn tracker of a churn phase, when it has
// ACKed its content.
type client struct {
	adsStream
	services []int // Service indices, in subscription order
	slots    []int // by position: this client's slot among the Service's subscribers
	names    []string
	pos      map[string]int
	hash     hasher
	current  *atomic.Pointer[change]
	churn    *atomic.Pointer[churnTracker]

	// adsStream.delta is set for a client that speaks incremental xDS, as
	// Envoy can: it subscribes once and ACKs with a nonce alone.

	mu       sync.Mutex
	clusters []uint64 // digest by position; 0 = not received
	assigns  []uint64
	missing  int // positions whose CDS or EDS resource has not arrived yet
	lastSeq  int
	edsNames []string // names learned from the clusters
}

// newClient subscribes to services; slots[p] is the client's slot among the
// subscribers of services[p] (see churnTracker).
func newClient(id int, name func(int) string, services, slots []int, h hasher, current *atomic.Pointer[change], churn *atomic.Pointer[churnTracker]) *client {
	c := &client{
		adsStream: adsStream{id: id, done: make(chan struct{}), synced: make(chan struct{})}, services: services, slots: slots, hash: h, current: current, churn: churn,
		pos:      make(map[string]int, len(services)),
		clusters: make([]uint64, len(services)),
		assigns:  make([]uint64, len(services)),
		missing:  2 * len(services),
	}
	for p, i := range services {
		n := name(i)
		c.names = append(c.names, n)
		c.pos[n] = p
	}
	if c.missing == 0 {
		close(c.synced)
	}
	return c
}

// start connects and subscribes; the client runs until ctx ends or the
// stream fails (see wait).
func (c *client) start(ctx context.Context, addr string) error {
	if err := c.dial(addr); err != nil {
		return fmt.Errorf("client %d: %w", c.id, err)
	}
	node := &corev3.Node{
		Id:             "load-" + strconv.Itoa(c.id),
		UserAgentName:  "switchboard-load",
		ClientFeatures: []string{"xds.config.resource-in-sotw"},
		Locality:       &corev3.Locality{},
	}
	if err := c.open(ctx); err != nil {
		return fmt.Errorf("client %d: %w", c.id, err)
	}
	var err error
	if c.delta {
		err = c.sendDelta(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, ResourceNamesSubscribe: c.names})
	} else {
		err = c.send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, ResourceNames: c.names})
	}
	if err != nil {
		_ = c.conn.Close()
		return err
	}
	go c.run(c.recvSotW, c.recvDelta)
	return nil
}

// response is what the client needs of a response of either protocol: its
// resources, how to ACK it, and how to subscribe to assignments.
type response struct {
	typeURL   string
	resources []*anypb.Any
	ack       func(names []string) error
	subscribe func(names []string) error
}

func (c *client) recvSotW() error {
	resp, err := c.stream.Recv()
	if err != nil {
		return err
	}
	c.bytesDown.Add(int64(proto.Size(resp)))
	return c.handle(response{
		typeURL:   resp.GetTypeUrl(),
		resources: resp.GetResources(),
		ack: func(names []string) error {
			return c.send(&discoveryv3.DiscoveryRequest{
				TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(),
				ResponseNonce: resp.GetNonce(), ResourceNames: names,
			})
		},
		subscribe: func(names []string) error {
			return c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: names})
		},
	})
}

func (c *client) recvDelta() error {
	resp, err := c.dstream.Recv()
	if err != nil {
		return err
	}
	c.bytesDown.Add(int64(proto.Size(resp)))
	anys := make([]*anypb.Any, len(resp.GetResources()))
	for i, r := range resp.GetResources() {
		anys[i] = r.GetResource()
	}
	return c.handle(response{
		typeURL:   resp.GetTypeUrl(),
		resources: anys,
		ack: func([]string) error {
			return c.sendDelta(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()})
		},
		subscribe: func(names []string) error {
			return c.sendDelta(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: names})
		},
	})
}

func (c *client) handle(resp response) error {
	c.responses.Add(1)
	switch resp.typeURL {
	case resourcev3.ClusterType:
		return c.handleClusters(resp)
	case resourcev3.EndpointType:
		return c.handleAssignments(resp)
	}
	return fmt.Errorf("client %d: response of unexpected type %s", c.id, resp.typeURL)
}

func (c *client) handleClusters(resp response) error {
	var learned []string
	c.mu.Lock()
	first := c.edsNames == nil
	for _, a := range resp.resources {
		var cl clusterv3.Cluster
		if err := a.UnmarshalTo(&cl); err != nil {
			c.mu.Unlock()
			return fmt.Errorf("client %d: cluster: %w", c.id, err)
		}
		p, ok := c.pos[cl.GetName()]
		if !ok {
			continue
		}
		c.setLocked(c.clusters, p, c.hash.bytes(a.GetValue()))
		if first {
			learned = append(learned, cl.GetEdsClusterConfig().GetServiceName())
		}
	}
	if first {
		c.edsNames = learned
	}
	c.mu.Unlock()
	if err := resp.ack(c.names); err != nil {
		return err
	}
	if first {
		// As a gRPC client does: EDS for the service names the clusters name.
		return resp.subscribe(learned)
	}
	return nil
}

func (c *client) handleAssignments(resp response) error {
	type got struct {
		name   string
		pos    int
		digest uint64
	}
	seen := make([]got, 0, len(resp.resources))
	c.mu.Lock()
	for _, a := range resp.resources {
		name, err := clusterName(a.GetValue())
		if err != nil {
			c.mu.Unlock()
			return fmt.Errorf("client %d: assignment: %w", c.id, err)
		}
		p, ok := c.pos[name]
		if !ok {
			continue
		}
		d := c.hash.bytes(a.GetValue())
		c.setLocked(c.assigns, p, d)
		seen = append(seen, got{name, p, d})
	}
	names := c.edsNames
	c.mu.Unlock()
	if err := resp.ack(names); err != nil {
		return err
	}
	// The ACK is on the wire: report to the churn phase or to the change
	// the driver waits on.
	if t := c.churn.Load(); t != nil {
		now := time.Now().UnixNano()
		for _, g := range seen {
			t.saw(c.services[g.pos], c.slots[g.pos], g.digest, now)
		}
		return nil
	}
	ch := c.current.Load()
	if ch == nil {
		return nil
	}
	for _, g := range seen {
		if g.name == ch.name && g.digest == ch.digest && c.lastSeq != ch.seq {
			c.lastSeq = ch.seq
			if ch.remaining.Add(-1) == 0 {
				ch.end.Store(time.Now().UnixNano())
				close(ch.done)
			}
		}
	}
	return nil
}

// setLocked stores a digest and closes synced when the last missing
// resource arrives. Must be called with c.mu held.
func (c *client) setLocked(digests []uint64, p int, d uint64) {
	if digests[p] == 0 {
		c.missing--
		if c.missing == 0 {
			close(c.synced)
		}
	}
	digests[p] = d
}

// mismatches counts the resources whose digest differs from want.
func (c *client) mismatches(want *expectedState) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for p, i := range c.services {
		if c.clusters[p] != want.clusters[i] {
			n++
		}
		if c.assigns[p] != want.assignments[i] {
			n++
		}
	}
	return n
}

// clusterName reads field 1 (cluster_name) of a marshalled
// ClusterLoadAssignment without unmarshalling the endpoints.
func clusterName(b []byte) (string, error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return "", protowire.ParseError(m)
			}
			return string(v), nil
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return "", protowire.ParseError(m)
		}
		b = b[m:]
	}
	return "", errors.New("no cluster_name")
}
