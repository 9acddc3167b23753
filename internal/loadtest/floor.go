package loadtest

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchboard-xds/switchboard/translator"
)

// floorPeer is the fan-out floor: the least work an ADS server can do for a
// single-endpoint change. It marshals the changed assignment once, builds
// one DiscoveryResponse and queues that same response on every stream
// subscribed to the name. It keeps no per-client versions, ignores ACKs and
// NACKs, and answers a request only when its names differ from the stream's
// last ones (a new subscription). Changes to types other than EDS reach only
// new subscriptions: the harness changes endpoints only. It is a yardstick,
// not a server anyone should run. It serves SotW and delta streams alike.
type floorPeer struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer

	mu      sync.Mutex
	version int
	byType  map[string]map[string]*anypb.Any
	subs    map[string]map[*floorStream]struct{} // EDS name → streams
}

func newFloorPeer() *floorPeer {
	p := &floorPeer{byType: map[string]map[string]*anypb.Any{}, subs: map[string]map[*floorStream]struct{}{}}
	for _, t := range gcpTypes {
		p.byType[t] = map[string]*anypb.Any{}
	}
	return p
}

func (p *floorPeer) register(gs *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, p)
}

func (p *floorPeer) apply(_ context.Context, full bool, svcs map[string]*translator.Resources) error {
	marshalled := map[string]map[string]*anypb.Any{}
	for t, rs := range encodedByType(svcs) {
		marshalled[t] = make(map[string]*anypb.Any, len(rs))
		for name, e := range rs {
			marshalled[t][name] = &anypb.Any{TypeUrl: t, Value: e.Wire}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for t, rs := range marshalled {
		for name, a := range rs {
			p.byType[t][name] = a
		}
	}
	if full {
		return nil
	}
	for name, a := range marshalled[resourcev3.EndpointType] {
		p.version++
		v := strconv.Itoa(p.version)
		var sotw *discoveryv3.DiscoveryResponse
		var delta *discoveryv3.DeltaDiscoveryResponse
		for st := range p.subs[name] {
			switch {
			case st.delta && delta == nil:
				delta = &discoveryv3.DeltaDiscoveryResponse{
					SystemVersionInfo: v, Nonce: v, TypeUrl: resourcev3.EndpointType,
					Resources: []*discoveryv3.Resource{{Name: name, Version: v, Resource: a}},
				}
				fallthrough
			case st.delta:
				st.enqueue(delta)
			case sotw == nil:
				sotw = &discoveryv3.DiscoveryResponse{VersionInfo: v, Nonce: v, TypeUrl: resourcev3.EndpointType, Resources: []*anypb.Any{a}}
				fallthrough
			default:
				st.enqueue(sotw)
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
	st := &floorStream{signal: make(chan struct{}, 1), names: map[string][]string{}}
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
	st := &floorStream{delta: true, signal: make(chan struct{}, 1), names: map[string][]string{}}
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

// deltaRequest handles a delta subscription; requests that subscribe to
// nothing (ACKs) are ignored.
func (p *floorPeer) deltaRequest(st *floorStream, req *discoveryv3.DeltaDiscoveryRequest) {
	t, names := req.GetTypeUrl(), req.GetResourceNamesSubscribe()
	p.mu.Lock()
	defer p.mu.Unlock()
	known, ok := p.byType[t]
	if !ok || len(names) == 0 {
		return
	}
	st.names[t] = append(st.names[t], names...)
	p.version++
	v := strconv.Itoa(p.version)
	resp := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: v, Nonce: v, TypeUrl: t}
	for _, n := range names {
		if t == resourcev3.EndpointType {
			if p.subs[n] == nil {
				p.subs[n] = map[*floorStream]struct{}{}
			}
			p.subs[n][st] = struct{}{}
		}
		if a := known[n]; a != nil {
			resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: n, Version: v, Resource: a})
		}
	}
	st.enqueue(resp)
}

// request handles a new subscription; ACKs (same names) are ignored.
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
	if t == resourcev3.EndpointType {
		for _, n := range old {
			delete(p.subs[n], st)
		}
		for _, n := range names {
			if p.subs[n] == nil {
				p.subs[n] = map[*floorStream]struct{}{}
			}
			p.subs[n][st] = struct{}{}
		}
	}
	p.version++
	v := strconv.Itoa(p.version)
	resp := &discoveryv3.DiscoveryResponse{VersionInfo: v, Nonce: v, TypeUrl: t}
	for _, n := range names {
		if a := known[n]; a != nil {
			resp.Resources = append(resp.Resources, a)
		}
	}
	st.enqueue(resp)
}

func (p *floorPeer) unsubscribe(st *floorStream) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range st.names[resourcev3.EndpointType] {
		delete(p.subs[n], st)
	}
}
