// Package model holds the contracts between Switchboard's stages:
//
//   - the input: the trimmed, per-Service view of Kubernetes that the
//     watcher produces (Service, Port, Endpoint, ServiceKey), the mesh
//     routes and ReferenceGrants of the Gateway API (MeshRoute,
//     ReferenceGrant), and the Batch of changes it publishes to a Sink;
//   - the output: the encoded, versioned xDS resources the translator makes
//     of a view (Resources, Encoded, Variant, View, ResourceType), and the
//     status of each mesh route (RouteStatus) that one writer puts on it;
//   - the client vocabulary: what the server decides per client (Client:
//     class, zone, namespace; which variants it gets, which resources it may
//     see and which a wildcard brings it).
//
// The translator, the watcher and the xDS server import it and nothing of
// each other, so it imports nothing of Switchboard's and nothing of
// client-go or go-control-plane: each stage can be built, tested and
// fuzzed alone. Values are immutable once published.
package model
