//go:build !vtprotobuf

package translator

import endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

var (
	vtMarshal func(*endpointv3.ClusterLoadAssignment) ([]byte, error)
	vtSmall   map[string]func(name string, aliases []string) ([]byte, error)
)
