package xds

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// Services come and go while delta streams, each on its own goroutine,
// take the changes: slots become tombstones and go to other names under
// the streams' feet. When the churn stops, every stream's client holds
// exactly what the cache has of its names, each at its current version:
// no change lost to a reused slot, no name invented. Streams of few names
// are watched by name, those of many are told of everything.
func TestChurnKeepsClientsExact(t *testing.T) {
	const pool = 400
	names := make([]string, pool)
	for i := range names {
		names[i] = fmt.Sprintf("s%03d", i)
	}
	c := newTestCache()
	world := map[string]*model.Resources{}
	for _, n := range names[:pool/2] {
		world["ns/"+n] = svc(n, 1)
	}
	apply(t, c, true, world)
	srv := NewServer(c, ServerOptions{})
	first := map[uint32]string{}
	for _, n := range names[:pool/2] {
		first[slotOf(t, c, endpointType, n)] = n
	}

	type client struct {
		st   *stream
		held map[string]string // name → version, as the client applied the responses
	}
	var clients []*client
	for i, sub := range [][]string{names[:40], names[100:150], names, names[50:350]} {
		cl := &client{held: map[string]string{}}
		st := newStream(int64(i), srv)
		st.sendDelta = func(r *discoveryv3.DeltaDiscoveryResponse) error {
			for _, res := range r.GetResources() {
				cl.held[res.GetName()] = res.GetVersion()
			}
			for _, n := range r.GetRemovedResources() {
				delete(cl.held, n)
			}
			return nil
		}
		seq := c.register(st.w)
		for ty := range numTypes {
			st.types[ty].advance(seq)
		}
		t.Cleanup(func() { c.unregister(st.w) })
		if err := st.handleDelta(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: sub}); err != nil {
			t.Fatal(err)
		}
		if got := st.types[endpointType].watchAll; got != (len(sub) >= watchAllMin) {
			t.Fatalf("stream of %d names: told of everything %v", len(sub), got)
		}
		cl.st = st
		clients = append(clients, cl)
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for _, cl := range clients {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-cl.st.w.signal:
					if err := cl.st.handleChanges(); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	r := rand.New(rand.NewPCG(3, 4))
	live := map[string]bool{}
	for _, n := range names[:pool/2] {
		live[n] = true
	}
	for i := range 3000 {
		u := map[string]*model.Resources{}
		for range r.IntN(4) + 1 {
			n := names[r.IntN(pool)]
			if live[n] && r.IntN(2) == 0 {
				u["ns/"+n] = nil
				delete(live, n)
			} else {
				u["ns/"+n] = svc(n, uint32(i+2))
				live[n] = true
			}
		}
		apply(t, c, false, u)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for i, cl := range clients {
		if err := cl.st.handleChanges(); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for _, n := range cl.st.types[endpointType].subscribedNames() {
			if r := c.getView(endpointType, n, cl.st.view[endpointType]); r != nil {
				want[n] = r.Version()
			}
		}
		if !maps.Equal(cl.held, want) {
			for n, v := range want {
				if cl.held[n] != v {
					t.Errorf("client %d: %s held at %q, current %q", i, n, cl.held[n], v)
				}
			}
			for n := range cl.held {
				if _, ok := want[n]; !ok {
					t.Errorf("client %d: holds %s, which the cache does not", i, n)
				}
			}
			t.FailNow()
		}
	}
	// The churn gave some name a slot that another name had.
	reused := false
	for n := range live {
		if was, ok := first[slotOf(t, c, endpointType, n)]; ok && was != n {
			reused = true
		}
	}
	if !reused {
		t.Error("no slot went to another name: the churn did not test reuse")
	}
}
