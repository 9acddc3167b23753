package observability

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
)

// The dashboard's panels, row by row. Every query selects with sel, so the
// job and instance variables filter every panel; README.md ("Dashboards and
// alerts") says what each panel shows.

// sel restricts a metric to the dashboard's job and instance variables.
// Variables appear only in =~ matchers: an "All" selection is a regular
// expression (allValue ".+").
const sel = `{job=~"$job", instance=~"$instance"}`

// rateWindow is Grafana's window for rate(): at least four scrape intervals.
const rateWindow = "[$__rate_interval]"

func rate(metric string) string { return "rate(" + metric + sel + rateWindow + ")" }

// sumRate is the per-second rate of a counter summed by the labels in by
// (a comma-separated list; empty: over everything).
func sumRate(by, metric string) string {
	if by == "" {
		return "sum(" + rate(metric) + ")"
	}
	return "sum by (" + by + ") (" + rate(metric) + ")"
}

// quantile is the q-quantile of a histogram, over the labels in by.
func quantile(q float64, metric, by string) string {
	return fmt.Sprintf("histogram_quantile(%g, sum by (%sle) (%s))", q, by, rate(metric+"_bucket"))
}

// p50p99 are the median and the 99th percentile of a histogram by the
// labels in by (a comma-separated list ending in ", " or empty), legends
// prefixed with legend.
func p50p99(metric, by, legend string) []Query {
	return []Query{
		{Expr: quantile(0.5, metric, by), Legend: "p50 " + legend},
		{Expr: quantile(0.99, metric, by), Legend: "p99 " + legend},
	}
}

type panelKind int

const (
	kindTimeseries panelKind = iota
	kindStat
)

// spec is one panel: what it shows and how wide it is (of 24 columns).
type spec struct {
	title, description string
	kind               panelKind
	unit               string
	width              uint32
	queries            []Query
	// warnAt, when set, colours values at or above it red (stat) or draws
	// it as a line (time series), e.g. an alert's threshold.
	warnAt *float64
	// okAt, when set, colours a stat red below it and green at or above.
	okAt *float64
	// textMode is a stat's text mode; empty is "auto" (the value).
	textMode common.BigValueTextMode
}

type row struct {
	title  string
	panels []spec
}

func f(v float64) *float64 { return &v }

func rows() []row {
	return []row{
		{"Overview", []spec{
			{
				title: "Version", description: "switchboard_build_info: the version and Go version each replica runs.", kind: kindStat, width: 4, textMode: common.BigValueTextModeName,
				queries: []Query{{Expr: "switchboard_build_info" + sel, Legend: "{{version}} ({{go_version}})"}},
			},
			{
				title: "Cache ready", description: "1 once the first full translation after sync is in the cache (/readyz); 0 for 5 minutes alerts.", kind: kindStat, width: 4, okAt: f(1),
				queries: []Query{{Expr: "switchboard_cache_ready" + sel, Legend: "{{instance}}"}},
			},
			{
				title: "Watcher synced", description: "1 while the watcher is in sync with the API server or manifest folder.", kind: kindStat, width: 4, okAt: f(1),
				queries: []Query{{Expr: "switchboard_watcher_synced" + sel, Legend: "{{instance}}"}},
			},
			{
				title: "Connected clients", description: "ADS streams open now, over the selected replicas.", kind: kindStat, width: 4,
				queries: []Query{{Expr: "sum(switchboard_xds_connected_clients" + sel + ")", Legend: "clients"}},
			},
			{
				title: "Services", description: "Services the watcher publishes (the largest over the selected replicas).", kind: kindStat, width: 4,
				queries: []Query{{Expr: "max(switchboard_watcher_services" + sel + ")", Legend: "Services"}},
			},
			{
				title: "Diagnostics", description: "Services that could not be translated, or not fully, now: see /debug/diagnostics.", kind: kindStat, width: 4, warnAt: f(1),
				queries: []Query{{Expr: "max(switchboard_translate_diagnostics" + sel + ")", Legend: "diagnostics"}},
			},
		}},
		{"Clients", []spec{
			{
				title: "Clients by class and zone", description: "ADS streams open, by client class (envoy, c-core, other) and the client's zone.", kind: kindTimeseries, unit: "short", width: 12,
				queries: []Query{{Expr: "sum by (client_class, zone) (switchboard_xds_connected_clients" + sel + ")", Legend: "{{client_class}} {{zone}}"}},
			},
			{
				title: "Oldest un-ACKed response", description: "Age of the oldest response sent and not yet ACKed (or NACKed), by client class. Over 30 s for a minute alerts (SwitchboardClientStale).", kind: kindTimeseries, unit: "s", width: 12, warnAt: f(30),
				queries: []Query{{Expr: "max by (client_class) (switchboard_xds_oldest_unacked_seconds" + sel + ")", Legend: "{{client_class}}"}},
			},
			{
				title: "NACKs by type and class", description: "Responses rejected by clients per second, by type and client class (SwitchboardNACKs).", kind: kindTimeseries, unit: "short", width: 12,
				queries: []Query{{Expr: sumRate("type, client_class", "switchboard_xds_nacks_total"), Legend: "{{type}} {{client_class}}"}},
			},
			{
				title: "Clients rejecting now", description: "Clients whose last answer to a response of the type was a NACK, not since an ACK, by type and client class. Above 0 for a minute alerts (SwitchboardClientsNacking).", kind: kindTimeseries, unit: "short", width: 12, warnAt: f(1),
				queries: []Query{{Expr: "sum by (type, client_class) (switchboard_xds_nacked_streams" + sel + ")", Legend: "{{type}} {{client_class}}"}},
			},
			{
				title: "Stream duration", description: "How long ADS streams lasted when they ended, by client class (p50, p99). Short streams mean reconnecting clients.", kind: kindTimeseries, unit: "s", width: 12,
				queries: p50p99("switchboard_xds_stream_duration_seconds", "client_class, ", "{{client_class}}"),
			},
		}},
		{"Convergence", []spec{
			{
				title: "Convergence by type", description: "From a change seen by the watcher to the client's ACK, by resource type (p50, p99). p99 over 5 s for 10 minutes alerts.", kind: kindTimeseries, unit: "s", width: 12, warnAt: f(5),
				queries: p50p99("switchboard_convergence_seconds", "type, ", "{{type}}"),
			},
			{
				title: "Convergence by client class", description: "The same, by client class (p50, p99).", kind: kindTimeseries, unit: "s", width: 12, warnAt: f(5),
				queries: p50p99("switchboard_convergence_seconds", "client_class, ", "{{client_class}}"),
			},
			{
				title: "Convergence stages", description: "Where the time goes: coalesce (the watcher's batching delay), translate, push (send to ACK) (p50, p99).", kind: kindTimeseries, unit: "s", width: 12,
				queries: p50p99("switchboard_convergence_stage_seconds", "stage, ", "{{stage}}"),
			},
			{
				title: "Translation time", description: "Time to translate one batch of changed Services and store it in the cache (p50, p99).", kind: kindTimeseries, unit: "s", width: 12,
				queries: p50p99("switchboard_translate_duration_seconds", "", ""),
			},
		}},
		{"Pushes", []spec{
			{
				title: "Responses by type", description: "DiscoveryResponses sent per second, by type.", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{{Expr: sumRate("type", "switchboard_xds_responses_total"), Legend: "{{type}}"}},
			},
			{
				title: "Resources pushed by type", description: "Resources carried in responses per second, by type.", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{{Expr: sumRate("type", "switchboard_xds_response_resources_total"), Legend: "{{type}}"}},
			},
			{
				title: "Resources removed by type", description: "Resource names sent as removed in delta responses per second, by type.", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{{Expr: sumRate("type", "switchboard_xds_removed_resources_total"), Legend: "{{type}}"}},
			},
			{
				title: "Cache resource changes", description: "Resources whose version changed in the cache per second.", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{{Expr: sumRate("", "switchboard_cache_resource_changes_total"), Legend: "changes"}},
			},
			{
				title: "gRPC streams", description: "RPCs started per second by method, and ended per second by method and status code.", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{
					{Expr: sumRate("grpc_method", "grpc_server_started_total"), Legend: "started {{grpc_method}}"},
					{Expr: sumRate("grpc_method, grpc_code", "grpc_server_handled_total"), Legend: "ended {{grpc_method}} {{grpc_code}}"},
				},
			},
			{
				title: "gRPC handling time", description: "How long RPCs took, by method (p99); for the ADS streams this is their lifetime.", kind: kindTimeseries, unit: "s", width: 8,
				queries: []Query{{Expr: quantile(0.99, "grpc_server_handling_seconds", "grpc_method, "), Legend: "p99 {{grpc_method}}"}},
			},
		}},
		{"Watcher", []spec{
			{
				title: "Watcher events", description: "Service and EndpointSlice events seen per second, by kind and event.", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{{Expr: sumRate("kind, event", "switchboard_watcher_events_total"), Legend: "{{kind}} {{event}}"}},
			},
			{
				title: "Batches published", description: "Batches of changed Services handed to translation per second.", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{{Expr: sumRate("", "switchboard_watcher_batches_total"), Legend: "batches"}},
			},
			{
				title: "Services per batch", description: "How many Services each batch carried (p50, p99).", kind: kindTimeseries, unit: "short", width: 8,
				queries: p50p99("switchboard_watcher_batch_services", "", ""),
			},
			{
				title: "Watch errors by resource", description: "Errors watching the API server per second, by resource (SwitchboardWatchErrors).", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{{Expr: sumRate("resource", "switchboard_watcher_watch_errors_total"), Legend: "{{resource}}"}},
			},
			{
				title: "Manifest contents refused", description: "Standalone mode: manifest file contents refused per second, by reason (the file's last good content is kept).", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{{Expr: sumRate("reason", "switchboard_watcher_manifest_refused_total"), Legend: "{{reason}}"}},
			},
			{
				title: "Diagnostics", description: "Services that could not be translated, or not fully, by replica.", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{{Expr: "switchboard_translate_diagnostics" + sel, Legend: "{{instance}}"}},
			},
		}},
		{"Go runtime and process", []spec{
			{
				title: "Goroutines", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{{Expr: "go_goroutines" + sel, Legend: "{{instance}}"}},
			},
			{
				title: "Heap", description: "Heap bytes in use and allocated to live objects.", kind: kindTimeseries, unit: "bytes", width: 8,
				queries: []Query{
					{Expr: "go_memstats_heap_inuse_bytes" + sel, Legend: "in use {{instance}}"},
					{Expr: "go_memstats_heap_alloc_bytes" + sel, Legend: "allocated {{instance}}"},
				},
			},
			{
				title: "GC", description: "Garbage collections per second, and the longest recent stop-the-world pause.", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{
					{Expr: rate("go_gc_duration_seconds_count"), Legend: "cycles/s {{instance}}"},
					{Expr: `go_gc_duration_seconds{job=~"$job", instance=~"$instance", quantile="1"}`, Legend: "max pause (s) {{instance}}"},
				},
			},
			{
				title: "CPU", description: "CPU time used per second (cores).", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{{Expr: rate("process_cpu_seconds_total"), Legend: "{{instance}}"}},
			},
			{
				title: "Resident memory", kind: kindTimeseries, unit: "bytes", width: 8,
				queries: []Query{{Expr: "process_resident_memory_bytes" + sel, Legend: "{{instance}}"}},
			},
			{
				title: "File descriptors", description: "Open file descriptors (each client stream's connection is one) and the limit.", kind: kindTimeseries, unit: "short", width: 8,
				queries: []Query{
					{Expr: "process_open_fds" + sel, Legend: "open {{instance}}"},
					{Expr: "process_max_fds" + sel, Legend: "max {{instance}}"},
				},
			},
		}},
	}
}
