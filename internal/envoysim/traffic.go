package envoysim

import (
	"maps"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Traffic is what a Client received of one resource type since it was
// dialled or its traffic was last reset: what a change cost it.
type Traffic struct {
	// Responses is the number of responses; Bytes their size on the wire
	// (the marshalled DiscoveryResponse or DeltaDiscoveryResponse).
	Responses, Bytes int
	// Resources is the number of resources received, Removed the number
	// of names a delta response removed.
	Resources, Removed int
	// ResourceBytes is the size of every resource received (its Any), by
	// name, summed over the responses that carried it.
	ResourceBytes map[string]int
}

// Traffic returns what the client received, by type URL.
func (c *Client) Traffic() map[string]Traffic {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Traffic, len(c.traffic))
	for t, tr := range c.traffic {
		tr.ResourceBytes = maps.Clone(tr.ResourceBytes)
		out[t] = tr
	}
	return out
}

// ResetTraffic starts counting anew.
func (c *Client) ResetTraffic() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.traffic = nil
}

// record counts one response of typeURL of size bytes carrying resources
// and removing removed names.
func (c *Client) record(typeURL string, size int, resources []*anypb.Any, removed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.traffic == nil {
		c.traffic = map[string]Traffic{}
	}
	tr := c.traffic[typeURL]
	if tr.ResourceBytes == nil {
		tr.ResourceBytes = map[string]int{}
	}
	tr.Responses++
	tr.Bytes += size
	tr.Resources += len(resources)
	tr.Removed += removed
	for _, a := range resources {
		name := "(undecodable)"
		if m, err := decode(a); err == nil {
			name = resourceName(m)
		}
		tr.ResourceBytes[name] += proto.Size(a)
	}
	c.traffic[typeURL] = tr
}

// resourceName is the name a resource is known by.
func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *clusterv3.Cluster:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	}
	return ""
}
