package loadtest

import (
	"fmt"
	"slices"
	"time"
)

// Result is what one Kind did under one Options.
type Result struct {
	Kind                         Kind
	Shape                        Shape
	Namespaces                   int
	Sidecars                     bool // the world had the sidecar resources
	Routes                       int  // Services with an HTTPRoute (Options.Routes)
	Clients, Services, Endpoints int
	PerClient                    int
	Delta                        bool // clients spoke delta xDS
	Changes                      int  // applied (Options.Budget may cut them short)
	Sync                         time.Duration
	Latencies                    []time.Duration // per change: until every affected client ACKed
	Apply                        []time.Duration // per change, in the peer: translate + store
	Timeouts                     int
	CPUPerChange                 time.Duration
	BytesDownPerChange           float64       // proto.Size of responses, all clients
	BytesUpPerChange             float64       // proto.Size of requests (ACKs), all clients
	PushesPerAffected            float64       // responses per affected client per change
	HeapPerEndpoint              float64       // server heap of the world / endpoints
	HeapPerClient                float64       // server heap of the connected clients / clients
	FinalMismatches              int           // resources, over all clients, that differ from the world at the end
	Churn                        []ChurnResult // one per Options.Churn rate, in order
	// Envoy clients only (Options.Adds): per added Service, until every
	// client has ACKed its cluster, its assignment and a route
	// configuration with its virtual host; server CPU and bytes per addition; bytes of the
	// initial sync per client.
	Adds               int
	AddLatencies       []time.Duration
	AddTimeouts        int
	CPUPerAdd          time.Duration
	BytesDownPerAdd    float64
	SyncBytesPerClient float64
}

// AddP50 and AddP99 are quantiles of AddLatencies.
func (r Result) AddP50() time.Duration { return quantile(r.AddLatencies, 0.50) }

// AddP99 is the nearest-rank 99th percentile of AddLatencies.
func (r Result) AddP99() time.Duration { return quantile(r.AddLatencies, 0.99) }

// quantile returns the nearest-rank q-quantile of d (0 when empty).
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// P50 is the median convergence time.
func (r Result) P50() time.Duration { return quantile(r.Latencies, 0.50) }

// P99 is the 99th percentile convergence time (nearest rank: with fewer
// than 100 changes it is the maximum).
func (r Result) P99() time.Duration { return quantile(r.Latencies, 0.99) }

// Max is the slowest change.
func (r Result) Max() time.Duration { return quantile(r.Latencies, 1) }

// BytesPerChange is bytes down plus bytes up per change.
func (r Result) BytesPerChange() float64 { return r.BytesDownPerChange + r.BytesUpPerChange }

// scenario names the (N, R, subscription) a Result belongs to, as in the
// report lines.
func (r Result) scenario() string {
	s := fmt.Sprintf("N=%d R=%d", r.Clients, r.Services)
	if r.PerClient > 0 {
		s += fmt.Sprintf(" each=%d", r.PerClient)
	}
	if r.Delta {
		s += " delta"
	}
	if r.Shape == ShapeEnvoy {
		s += " envoy"
	}
	if r.Namespaces > 1 {
		s += fmt.Sprintf(" ns=%d", r.Namespaces)
	}
	if r.Routes > 0 {
		s += fmt.Sprintf(" routes=%d", r.Routes)
	}
	return s
}
