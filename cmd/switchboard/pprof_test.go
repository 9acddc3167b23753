package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-xds/switchboard/pipeline"
	"github.com/switchboard-xds/switchboard/xds"
)

// TestPprofOnlyOnDebugHandler: the Go profiles are served on the debug
// address and not on the admin port (which the monitoring namespace
// reaches), and a CPU profile comes back as pprof's gzipped protobuf.
func TestPprofOnlyOnDebugHandler(t *testing.T) {
	cache := pipeline.NewCache(nil)
	admin := adminHandler(prometheus.NewRegistry(), cache)
	debug := debugHandler(xds.NewServer(cache, xds.ServerOptions{}), pipeline.NewSyncer(cache, pipeline.Options{}))
	for path, want := range map[string]string{
		"/debug/pprof/":                   "goroutine",
		"/debug/pprof/goroutine?debug=1":  "goroutine profile:",
		"/debug/pprof/heap?debug=1":       "heap profile:",
		"/debug/pprof/cmdline":            "",
		"/debug/pprof/symbol":             "num_symbols",
		"/debug/pprof/allocs?debug=1":     "heap profile:",
		"/debug/pprof/threadcreate?gc=1":  "",
		"/debug/pprof/mutex?debug=1":      "mutex",
		"/debug/pprof/block?debug=1":      "contention",
		"/debug/pprof/trace?seconds=0.05": "",
	} {
		if code := get(admin, path).Code; code != http.StatusNotFound {
			t.Errorf("admin %s = %d, want 404", path, code)
		}
		rec := get(debug, path)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("debug %s = %d, want 200 with %q; body starts %.200q", path, rec.Code, want, rec.Body.String())
		}
	}
	rec := get(debug, "/debug/pprof/profile?seconds=1")
	if rec.Code != http.StatusOK {
		t.Fatalf("CPU profile = %d %q", rec.Code, rec.Body.String())
	}
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatalf("CPU profile is not gzip (pprof's format): %v", err)
	}
	if b, err := io.ReadAll(zr); err != nil || len(b) == 0 {
		t.Errorf("CPU profile: %d bytes, %v", len(b), err)
	}
}
