package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/pipeline"
	"github.com/switchboard-xds/switchboard/xds"
)

// adminHandler serves what the cluster scrapes and probes, on
// --admin-address:
//
//	/metrics             Prometheus metrics
//	/healthz             the process is alive
//	/readyz              the first full translation after sync is in the cache
func adminHandler(reg *prometheus.Registry, cache *xds.Cache) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !cache.Ready() {
			http.Error(w, "not ready: waiting for the first full translation after the sources synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// debugHandler serves the views for operators, on --debug-address, which
// is loopback by default: they name every client and Service, which is not
// for whoever can reach the metrics port.
//
//	/debug/clients       every connected xDS client and its per-type state
//	/debug/config_dump   ?node=ID: what that client was last sent, per type
//	/debug/diagnostics   Services that could not be translated, or not fully
//	/debug/pprof/        Go profiles (net/http/pprof): heap, goroutine,
//	                     profile?seconds=N (CPU), trace, and the rest
func debugHandler(ads *xds.Server, syncer *pipeline.Syncer) http.Handler {
	mux := http.NewServeMux()
	// Registered here, not served from http.DefaultServeMux (where the
	// package's init also puts them, and which nothing of ours serves):
	// profiles show code paths and arguments, for the debug address only.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/clients", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, ads.Clients())
	})
	mux.Handle("GET /debug/config_dump", http.TimeoutHandler(configDump(ads), debugQueryTimeout, "timed out asking the streams\n"))
	mux.HandleFunc("GET /debug/routes", func(w http.ResponseWriter, _ *http.Request) {
		// The mesh routes' status conditions, as the status writer puts
		// them in status.parents (standalone mode has no writer).
		writeJSON(w, syncer.RouteStatuses())
	})
	mux.HandleFunc("GET /debug/diagnostics", func(w http.ResponseWriter, _ *http.Request) {
		type diag struct {
			Service string `json:"service"`
			Port    string `json:"port,omitempty"`
			Route   string `json:"route,omitempty"`
			Feature string `json:"feature,omitempty"`
			Flavour string `json:"flavour,omitempty"`
			Reason  string `json:"reason"`
		}
		out := []diag{}
		for _, d := range syncer.Diagnostics() {
			e := diag{Service: d.Service.String(), Port: d.Port, Feature: d.Feature, Reason: d.Reason}
			if d.Route != (model.RouteKey{}) {
				e.Route = d.Route.String()
			}
			if d.Feature != "" {
				e.Flavour = d.Flavour.String()
			}
			out = append(out, e)
		}
		writeJSON(w, out)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// debugServer is the debug HTTP server, or nothing when --debug-address is
// empty.
type debugServer struct {
	srv *http.Server
	lis net.Listener
}

// listenDebug listens on addr for debugHandler; "" means no debug server.
func listenDebug(addr string, ads *xds.Server, syncer *pipeline.Syncer) (debugServer, error) {
	if addr == "" {
		return debugServer{}, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return debugServer{}, fmt.Errorf("--debug-address: %w", err)
	}
	return debugServer{lis: lis, srv: &http.Server{Handler: debugHandler(ads, syncer), ReadHeaderTimeout: 5 * time.Second}}, nil
}

func (d debugServer) addr() string {
	if d.lis == nil {
		return "off"
	}
	return d.lis.Addr().String()
}
