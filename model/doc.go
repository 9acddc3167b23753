// Package model holds the trimmed, per-Service view of Kubernetes that the
// watcher produces and the translator reads: Service, Port and Endpoint, the
// ServiceKey that names a Service, and the Batch of changes the watcher
// publishes to a Sink.
//
// It is the contract between the two stages, so it imports nothing of
// Switchboard's and nothing of client-go: the translator can be built, tested
// and fuzzed without the informers, and a view can be written by hand or by
// the watcher alike. Values are immutable once published.
package model
