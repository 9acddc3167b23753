package pipeline

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/internal/poll"
	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
	"github.com/switchboard-xds/switchboard/xds"
)

func sidecarView(ns, name string, ip string, port int32, portName string, addrs ...string) *model.Service {
	svc := &model.Service{Key: model.ServiceKey{Namespace: ns, Name: name}, ClusterIPs: []string{ip}, SliceCount: 1}
	p := model.Port{Name: portName, Port: port, Protocol: "TCP"}
	for _, a := range addrs {
		p.Endpoints = append(p.Endpoints, model.Endpoint{Addresses: []string{a}, Port: port, Ready: true, Serving: true})
	}
	svc.Ports = []model.Port{p}
	return svc
}

func groupKeys(m map[string]*model.Resources) []string {
	return slices.Sorted(maps.Keys(m))
}

func batchOf(at time.Time, svcs ...*model.Service) model.Batch {
	b := model.Batch{Services: map[model.ServiceKey]*model.Service{}, Changed: map[model.ServiceKey]time.Time{}}
	for _, s := range svcs {
		b.Services[s.Key] = s
		b.Changed[s.Key] = at
	}
	return b
}

// The sidecar stage rebuilds exactly the parts a change touches: nothing
// for an endpoint change, headless or not; a new Service's own listener
// and the DNS table; a removal for a deleted Service's listener; a full
// batch rebuilds everything and drops what is gone.
func TestSidecarsRebuildOnlyWhatChanged(t *testing.T) {
	s := NewSidecars(translator.Options{SidecarDNS: "127.0.0.1:15053"})
	web := sidecarView("a", "web", "10.96.0.1", 80, "http", "10.0.0.1")
	db := sidecarView("a", "db", "10.96.0.2", 5432, "pg", "10.0.0.2")
	full := model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{web.Key: web, db.Key: db}}
	groups, _, err := s.Apply(full, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"~sidecar/dns", "~sidecar/shared", "~sidecar/tcp/10.96.0.1:80", "~sidecar/tcp/10.96.0.2:5432"}
	if got := groupKeys(groups); !slices.Equal(got, want) {
		t.Fatalf("full batch groups = %v, want %v (a full batch builds the DNS table even when asked to hold it)", got, want)
	}
	if r := groups["~sidecar/tcp/10.96.0.1:80"]; r == nil || len(r.Listeners) != 1 || r.Listeners[0].Name != "10.96.0.1_80" || len(r.Routes)+len(r.Variants) != 0 || !r.EnvoyOnly {
		t.Fatalf("tcp/10.96.0.1:80 = %+v, want one listener 10.96.0.1_80, no route, Envoy only", r)
	}

	// An endpoint change: nothing of the sidecar stage changes.
	at := time.Unix(100, 0)
	groups, _, err = s.Apply(batchOf(at, sidecarView("a", "web", "10.96.0.1", 80, "http", "10.0.0.9")), false)
	if err != nil || len(groups) != 0 || s.DNSPending() {
		t.Fatalf("endpoint change rebuilt %v (err %v, DNS pending %v), want nothing", groupKeys(groups), err, s.DNSPending())
	}

	// A new Service on port 80: its own listener and the DNS table, with
	// its time; the other Service's listener on the port is not touched.
	api := sidecarView("b", "api", "10.96.0.3", 80, "http", "10.0.0.3")
	groups, changed, err := s.Apply(batchOf(at, api), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := groupKeys(groups); !slices.Equal(got, []string{"~sidecar/dns", "~sidecar/tcp/10.96.0.3:80"}) {
		t.Fatalf("new Service rebuilt %v, want its listener and the DNS table", got)
	}
	if !changed["~sidecar/tcp/10.96.0.3:80"].Equal(at) || !changed["~sidecar/dns"].Equal(at) {
		t.Errorf("changed = %v, want %v for both", changed, at)
	}

	// Held: the listener now, the table later, with the earliest time.
	later := at.Add(time.Second)
	cache := sidecarView("b", "cache", "10.96.0.4", 6379, "redis")
	groups, _, err = s.Apply(batchOf(later, cache), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := groupKeys(groups); !slices.Equal(got, []string{"~sidecar/tcp/10.96.0.4:6379"}) || !s.DNSPending() {
		t.Fatalf("held batch rebuilt %v (DNS pending %v), want the listener only and the table pending", got, s.DNSPending())
	}
	groups, _, _ = s.Apply(batchOf(later.Add(time.Second), sidecarView("b", "q", "10.96.0.5", 5672, "amqp")), true)
	if len(groups) != 1 {
		t.Fatalf("second held batch rebuilt %v", groupKeys(groups))
	}
	groups, changed, err = s.FlushDNS()
	if err != nil || !slices.Equal(groupKeys(groups), []string{"~sidecar/dns"}) || !changed["~sidecar/dns"].Equal(later) || s.DNSPending() {
		t.Fatalf("flush = %v, %v, %v (pending %v); want the table changed at %v", groupKeys(groups), changed, err, s.DNSPending(), later)
	}
	if groups, _, _ = s.FlushDNS(); len(groups) != 0 {
		t.Fatalf("second flush = %v, want nothing", groupKeys(groups))
	}

	// db goes: its listener is removed.
	groups, _, err = s.Apply(model.Batch{Services: map[model.ServiceKey]*model.Service{db.Key: nil}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := groups["~sidecar/tcp/10.96.0.2:5432"]; !ok || r != nil {
		t.Fatalf("after deleting db, its listener = %v (present %v), want a removal", r, ok)
	}

	// A full batch with web only: everything else is removed.
	groups, _, err = s.Apply(model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{web.Key: web}}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"~sidecar/tcp/10.96.0.3:80", "~sidecar/tcp/10.96.0.4:6379", "~sidecar/tcp/10.96.0.5:5672"} {
		if r, ok := groups[gone]; !ok || r != nil {
			t.Errorf("second full batch: %s = %v (present %v), want a removal", gone, r, ok)
		}
	}
	if groups["~sidecar/tcp/10.96.0.1:80"] == nil || groups["~sidecar/dns"] == nil {
		t.Errorf("second full batch groups = %v, want web's listener and the table", groupKeys(groups))
	}
}

// A headless Service is answered in DNS through its cluster, so its pod
// churn rebuilds nothing: not the table, not a listener.
func TestSidecarsIgnoreHeadlessEndpoints(t *testing.T) {
	s := NewSidecars(translator.Options{SidecarDNS: "127.0.0.1:15053"})
	kafka := sidecarView("a", "kafka", "", 9092, "broker", "10.0.1.1")
	kafka.ClusterIPs, kafka.Headless = nil, true
	groups, _, err := s.Apply(model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{kafka.Key: kafka}}, false)
	if err != nil || groups["~sidecar/dns"] == nil {
		t.Fatalf("full batch: %v, %v; want the table", groupKeys(groups), err)
	}
	moved := sidecarView("a", "kafka", "", 9092, "broker", "10.0.1.2", "10.0.1.3")
	moved.ClusterIPs, moved.Headless = nil, true
	groups, _, err = s.Apply(batchOf(time.Unix(1, 0), moved), false)
	if err != nil || len(groups) != 0 || s.DNSPending() {
		t.Fatalf("headless endpoint change rebuilt %v (err %v, pending %v), want nothing", groupKeys(groups), err, s.DNSPending())
	}
}

// countingStore is a Store that records the versions of the DNS listener
// it is given.
type countingStore struct {
	mu        sync.Mutex
	dns       int
	last      *model.Resources
	listeners int // outbound listener groups stored
}

func (c *countingStore) Apply(u xds.Update) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := u.Services[dnsGroup]; ok {
		c.dns++
		c.last = r
	}
	for k := range u.Services {
		if strings.HasPrefix(k, SidecarGroupPrefix+"tcp/") {
			c.listeners++
		}
	}
	return len(u.Services), nil
}

func (c *countingStore) Ready() bool { return true }

func (c *countingStore) table() (int, *model.Resources) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dns, c.last
}

// 100 Services added one batch each within one interval send the DNS table
// once, with all of them, when the interval has passed; every listener is
// sent with its own batch, at once.
func TestSyncerCoalescesDNSTable(t *testing.T) {
	store := &countingStore{}
	s := NewSyncer(store, Options{Sidecars: true, DNSInterval: time.Hour, Translator: translator.Options{SidecarDNS: "127.0.0.1:15053"}})
	s.Sink(model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{}})
	if n, _ := store.table(); n != 1 {
		t.Fatalf("start-up stored the table %d times, want 1", n)
	}
	// With an hour's interval every change below waits; the test then
	// shortens the wait by flushing.
	for i := range 100 {
		s.Sink(batchOf(time.Now(), sidecarView("a", fmt.Sprintf("svc-%d", i), fmt.Sprintf("10.96.1.%d", i+1), 80, "http")))
	}
	if n, _ := store.table(); n != 1 {
		t.Fatalf("100 Services within the interval stored the table %d times, want still 1", n)
	}
	store.mu.Lock()
	listeners := store.listeners
	store.mu.Unlock()
	if listeners != 100 {
		t.Fatalf("%d outbound listeners stored, want each of the 100 at once", listeners)
	}
	s.sinkMu.Lock()
	timer := s.dnsTimer
	s.sinkMu.Unlock()
	if timer == nil || !timer.Stop() {
		t.Fatal("no flush armed for the held table")
	}
	go s.flushDNS()
	poll.Until(t, 10*time.Second, "the held table stored", func() bool { n, _ := store.table(); return n == 2 })
	_, last := store.table()
	if got := len(last.Listeners[0].Wire); got < 100*30 {
		t.Errorf("flushed table is %d bytes, want the records of 100 Services", got)
	}
}
