package loadtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchboard-xds/switchboard/model"
)

// floorPeer is the fan-out floor: the least work an ADS server can do for a
// change. It marshals a changed resource once, builds one
// DiscoveryResponse and queues that same response on every stream
// subscribed to the name (for LDS and CDS also on every wildcard stream:
// a SotW one gets every resource of the type, as SotW LDS and CDS must
// carry). It keeps no per-client versions, ignores ACKs and NACKs, and
// answers a request only when its names differ from the stream's last
// ones (a new subscription). It is a yardstick, not a server anyone should
// run. It serves SotW and delta streams alike.
type floorPeer struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer

	mu      sync.Mutex
	version int
	byType  map[string]map[string]*anypb.Any
	subs    map[string]map[string]map[*floorStream]struct{} // type → name → streams
	wild    map[string]map[*floorStream]struct{}            // LDS/CDS wildcard streams
}

func newFloorPeer() *floorPeer {
	p := &floorPeer{
		byType: map[string]map[string]*anypb.Any{},
		subs:   map[string]map[string]map[*floorStream]struct{}{},
		wild:   map[string]map[*floorStream]struct{}{},
	}
	for _, t := range gcpTypes {
		p.byType[t] = map[string]*anypb.Any{}
		p.subs[t] = map[string]map[*floorStream]struct{}{}
		p.wild[t] = map[*floorStream]struct{}{}
	}
	return p
}

// wildcardType reports whether a request of type t without names is a
// wildcard subscription.
func wildcardType(t string) bool { return t == resourcev3.ListenerType || t == resourcev3.ClusterType }

func (p *floorPeer) register(gs *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, p)
}

func (p *floorPeer) applyResources(_ context.Context, full bool, svcs map[string]*model.Resources) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	all := encodedByType(svcs)
	for _, t := range gcpTypes {
		var changed []*anypb.Any
		for name, e := range all[t] {
			if old := p.byType[t][name]; old != nil && bytes.Equal(old.GetValue(), e.Wire) {
				continue
			}
			a := &anypb.Any{TypeUrl: t, Value: e.Wire}
			p.byType[t][name] = a
			changed = append(changed, a)
		}
		if full || len(changed) == 0 {
			continue
		}
		p.version++
		v := strconv.Itoa(p.version)
		var delta *discoveryv3.DeltaDiscoveryResponse
		if len(p.wild[t]) > 0 {
			delta = &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: v, Nonce: v, TypeUrl: t}
			for _, a := range changed {
				delta.Resources = append(delta.Resources, &discoveryv3.Resource{Name: resourceName(a), Version: v, Resource: a})
			}
			sotw := &discoveryv3.DiscoveryResponse{VersionInfo: v, Nonce: v, TypeUrl: t, Resources: slices.Collect(maps.Values(p.byType[t]))}
			for st := range p.wild[t] {
				if st.delta {
					st.enqueue(delta)
				} else {
					st.enqueue(sotw)
				}
			}
		}
		for _, a := range changed {
			name := resourceName(a)
			var sotw *discoveryv3.DiscoveryResponse
			var delta *discoveryv3.DeltaDiscoveryResponse
			for st := range p.subs[t][name] {
				switch {
				case st.delta && delta == nil:
					delta = &discoveryv3.DeltaDiscoveryResponse{
						SystemVersionInfo: v, Nonce: v, TypeUrl: t,
						Resources: []*discoveryv3.Resource{{Name: name, Version: v, Resource: a}},
					}
					fallthrough
				case st.delta:
					st.enqueue(delta)
				case sotw == nil:
					sotw = &discoveryv3.DiscoveryResponse{VersionInfo: v, Nonce: v, TypeUrl: t, Resources: []*anypb.Any{a}}
					fallthrough
				default:
					st.enqueue(sotw)
				}
			}
		}
	}
	return nil
}

// floorStream is one ADS stream of the floor: a queue of responses that the
// stream's goroutine sends in order.
type floorStream struct {
	delta  bool
	mu     sync.Mutex
	queue  []proto.Message // *DiscoveryResponse, or *DeltaDiscoveryResponse when delta
	signal chan struct{}
	names  map[string][]string // type URL → last requested names
	wild   map[string]bool     // type URL → a wildcard subscription
}

func (st *floorStream) enqueue(r proto.Message) {
	st.mu.Lock()
	st.queue = append(st.queue, r)
	st.mu.Unlock()
	select {
	case st.signal <- struct{}{}:
	default:
	}
}

// StreamAggregatedResources serves one SotW ADS stream.
func (p *floorPeer) StreamAggregatedResources(ss discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	st := &floorStream{signal: make(chan struct{}, 1), names: map[string][]string{}, wild: map[string]bool{}}
	return p.serve(ss.Context(), st, func() error {
		req, err := ss.Recv()
		if err == nil {
			p.request(st, req)
		}
		return err
	}, func(m proto.Message) error { return ss.Send(m.(*discoveryv3.DiscoveryResponse)) })
}

// DeltaAggregatedResources serves one delta ADS stream: subscriptions are
// answered with what exists, changes go to subscribers, ACKs are ignored.
func (p *floorPeer) DeltaAggregatedResources(ss discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	st := &floorStream{delta: true, signal: make(chan struct{}, 1), names: map[string][]string{}, wild: map[string]bool{}}
	return p.serve(ss.Context(), st, func() error {
		req, err := ss.Recv()
		if err == nil {
			p.deltaRequest(st, req)
		}
		return err
	}, func(m proto.Message) error { return ss.Send(m.(*discoveryv3.DeltaDiscoveryResponse)) })
}

// serve runs one stream: recv reads and handles one request, send sends
// one queued response.
func (p *floorPeer) serve(ctx context.Context, st *floorStream, recv func() error, send func(proto.Message) error) error {
	defer p.unsubscribe(st)
	recvErr := make(chan error, 1)
	go func() {
		for {
			if err := recv(); err != nil {
				recvErr <- err
				return
			}
		}
	}()
	for {
		select {
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-ctx.Done():
			return nil
		case <-st.signal:
		}
		st.mu.Lock()
		q := st.queue
		st.queue = nil
		st.mu.Unlock()
		for _, r := range q {
			if err := send(r); err != nil {
				return err
			}
		}
	}
}

// subscribeLocked adds st to the subscribers of names of type t. Must be
// called with p.mu held.
func (p *floorPeer) subscribeLocked(st *floorStream, t string, names []string) {
	for _, n := range names {
		if p.subs[t][n] == nil {
			p.subs[t][n] = map[*floorStream]struct{}{}
		}
		p.subs[t][n][st] = struct{}{}
	}
}

// deltaRequest handles a delta subscription; requests that subscribe to
// nothing (ACKs) are ignored, but the first request of LDS or CDS without
// names is a wildcard subscription and gets every resource of the type.
func (p *floorPeer) deltaRequest(st *floorStream, req *discoveryv3.DeltaDiscoveryRequest) {
	t, names := req.GetTypeUrl(), req.GetResourceNamesSubscribe()
	p.mu.Lock()
	defer p.mu.Unlock()
	known, ok := p.byType[t]
	if !ok {
		return
	}
	_, seen := st.names[t]
	wildcard := !seen && len(names) == 0 && wildcardType(t)
	if !wildcard && len(names) == 0 {
		return
	}
	st.names[t] = append(st.names[t], names...)
	p.version++
	v := strconv.Itoa(p.version)
	resp := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: v, Nonce: v, TypeUrl: t}
	if wildcard {
		st.wild[t] = true
		p.wild[t][st] = struct{}{}
		for n, a := range known {
			resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: n, Version: v, Resource: a})
		}
		st.enqueue(resp)
		return
	}
	p.subscribeLocked(st, t, names)
	for _, n := range names {
		if a := known[n]; a != nil {
			resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: n, Version: v, Resource: a})
		}
	}
	st.enqueue(resp)
}

// request handles a new subscription; ACKs (same names) are ignored. A
// first LDS or CDS request without names is a wildcard subscription.
func (p *floorPeer) request(st *floorStream, req *discoveryv3.DiscoveryRequest) {
	t := req.GetTypeUrl()
	p.mu.Lock()
	defer p.mu.Unlock()
	known, ok := p.byType[t]
	if !ok {
		return
	}
	old, seen := st.names[t]
	names := req.GetResourceNames()
	if seen && slices.Equal(old, names) {
		return
	}
	st.names[t] = names
	p.version++
	v := strconv.Itoa(p.version)
	resp := &discoveryv3.DiscoveryResponse{VersionInfo: v, Nonce: v, TypeUrl: t}
	if !seen && len(names) == 0 && wildcardType(t) {
		st.wild[t] = true
		p.wild[t][st] = struct{}{}
		resp.Resources = slices.Collect(maps.Values(known))
		st.enqueue(resp)
		return
	}
	for _, n := range old {
		delete(p.subs[t][n], st)
	}
	p.subscribeLocked(st, t, names)
	for _, n := range names {
		// RDS and EDS are not full-state: a response carries the names
		// just subscribed, not again every one the client holds (which,
		// for 1000 sidecars learning one new cluster, resent every
		// assignment to each of them and ran the floor out of memory).
		if a := known[n]; a != nil && (!seen || wildcardType(t) || !slices.Contains(old, n)) {
			resp.Resources = append(resp.Resources, a)
		}
	}
	if seen && len(resp.Resources) == 0 && !wildcardType(t) {
		return // only names dropped, or none that exists: nothing to send
	}
	st.enqueue(resp)
}

func (p *floorPeer) unsubscribe(st *floorStream) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t, names := range st.names {
		for _, n := range names {
			delete(p.subs[t][n], st)
		}
		delete(p.wild[t], st)
	}
}

// resourceName reads the name of a listener, route configuration or
// cluster (field 1, name) or an assignment (field 1, cluster_name) from
// its marshalled bytes.
func resourceName(a *anypb.Any) string {
	n, _ := clusterName(a.GetValue())
	return n
}
