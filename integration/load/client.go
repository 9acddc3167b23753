package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// change is one endpoint change the driver waits on: it is done when every
// affected client has ACKed a response carrying the assignment with digest.
type change struct {
	seq       int
	name      string
	digest    uint64
	remaining atomic.Int64
	done      chan struct{}
	end       atomic.Int64 // unix nanos of the last ACK
}

// client is a minimal SotW ADS client that behaves like a proxyless gRPC
// client after it has its listener and route: it subscribes by name to the
// clusters of its Services (CDS), then to the assignments those clusters
// name (EDS), and ACKs every response. It keeps an 8-byte digest per
// resource, counts bytes (proto.Size) and responses, and reports to the
// current change, or to the churn tracker of a churn phase, when it has
// ACKed its content.
type client struct {
	id       int
	services []int // Service indices, in subscription order
	slots    []int // by position: this client's slot among the Service's subscribers
	names    []string
	pos      map[string]int
	hash     hasher
	current  *atomic.Pointer[change]
	churn    *atomic.Pointer[churnTracker]

	conn   *grpc.ClientConn
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient

	mu       sync.Mutex
	clusters []uint64 // digest by position; 0 = not received
	assigns  []uint64
	missing  int // positions whose CDS or EDS resource has not arrived yet
	synced   chan struct{}
	lastSeq  int
	edsNames []string // names learned from the clusters

	bytesDown, bytesUp atomic.Int64
	responses          atomic.Int64
	err                error
	done               chan struct{}
}

// newClient subscribes to services; slots[p] is the client's slot among the
// subscribers of services[p] (see churnTracker).
func newClient(id int, services, slots []int, h hasher, current *atomic.Pointer[change], churn *atomic.Pointer[churnTracker]) *client {
	c := &client{
		id: id, services: services, slots: slots, hash: h, current: current, churn: churn,
		pos:      make(map[string]int, len(services)),
		clusters: make([]uint64, len(services)),
		assigns:  make([]uint64, len(services)),
		missing:  2 * len(services),
		synced:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	for p, i := range services {
		n := ResourceName(i)
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
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A SnapshotCache response carries every subscribed assignment.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return fmt.Errorf("client %d: %w", c.id, err)
	}
	c.conn = conn
	c.stream, err = discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("client %d: open ADS stream: %w", c.id, err)
	}
	node := &corev3.Node{
		Id:             "load-" + strconv.Itoa(c.id),
		UserAgentName:  "switchboard-load",
		ClientFeatures: []string{"xds.config.resource-in-sotw"},
		Locality:       &corev3.Locality{},
	}
	if err := c.send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, ResourceNames: c.names}); err != nil {
		_ = conn.Close()
		return err
	}
	go c.run()
	return nil
}

func (c *client) send(req *discoveryv3.DiscoveryRequest) error {
	c.bytesUp.Add(int64(proto.Size(req)))
	if err := c.stream.Send(req); err != nil {
		return fmt.Errorf("client %d: send: %w", c.id, err)
	}
	return nil
}

func (c *client) run() {
	defer close(c.done)
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.err = fmt.Errorf("client %d: %w", c.id, err)
			}
			return
		}
		if err := c.handle(resp); err != nil {
			c.err = err
			return
		}
	}
}

func (c *client) handle(resp *discoveryv3.DiscoveryResponse) error {
	c.bytesDown.Add(int64(proto.Size(resp)))
	c.responses.Add(1)
	switch resp.GetTypeUrl() {
	case resourcev3.ClusterType:
		return c.handleClusters(resp)
	case resourcev3.EndpointType:
		return c.handleAssignments(resp)
	}
	return fmt.Errorf("client %d: response of unexpected type %s", c.id, resp.GetTypeUrl())
}

func (c *client) ack(resp *discoveryv3.DiscoveryResponse, names []string) error {
	return c.send(&discoveryv3.DiscoveryRequest{
		TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(),
		ResponseNonce: resp.GetNonce(), ResourceNames: names,
	})
}

func (c *client) handleClusters(resp *discoveryv3.DiscoveryResponse) error {
	var learned []string
	c.mu.Lock()
	first := c.edsNames == nil
	for _, a := range resp.GetResources() {
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
	if err := c.ack(resp, c.names); err != nil {
		return err
	}
	if first {
		// As a gRPC client does: EDS for the service names the clusters name.
		return c.send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: learned})
	}
	return nil
}

func (c *client) handleAssignments(resp *discoveryv3.DiscoveryResponse) error {
	type got struct {
		name   string
		pos    int
		digest uint64
	}
	seen := make([]got, 0, len(resp.GetResources()))
	c.mu.Lock()
	for _, a := range resp.GetResources() {
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
	if err := c.ack(resp, names); err != nil {
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

func (c *client) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		<-c.done
	}
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
