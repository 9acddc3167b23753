package translator

import (
	"fmt"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchboard-xds/switchboard/model"
)

// connectTimeout is the upstream connect timeout set on every cluster.
// gRPC clients ignore it (they use their own backoff); Envoy requires a
// positive value and defaults to 5 s, which is kept.
const connectTimeout = 5 * time.Second

// edsCluster builds the Cluster named canonical: type EDS with its
// ClusterLoadAssignment (also named canonical) fetched over ADS, and round
// robin, the one policy that every gRPC client and Envoy support.
// LbPolicy ROUND_ROBIN is the proto's zero value, so it does not appear in
// the JSON form of the cluster.
//
// The Cluster and its own sub-messages come from one allocation (see
// clusterMsgs); the EDS config source and the connect timeout are the
// shared, never-changed messages of clusterShared. Callers may set other
// fields of the Cluster (policy.applyCluster does), not change those two.
func edsCluster(canonical string) *clusterv3.Cluster {
	sh := clusterParts()
	m := &clusterMsgs{}
	m.eds.EdsConfig = sh.adsSource
	m.eds.ServiceName = canonical
	m.typ.Type = clusterv3.Cluster_EDS
	m.c.Name = canonical
	m.c.ClusterDiscoveryType = &m.typ
	m.c.EdsClusterConfig = &m.eds
	m.c.ConnectTimeout = sh.connectTimeout
	m.c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	return &m.c
}

// clusterMsgs are the messages of one EDS Cluster, allocated together and
// used in place.
type clusterMsgs struct {
	c   clusterv3.Cluster
	typ clusterv3.Cluster_Type
	eds clusterv3.Cluster_EdsClusterConfig
}

// clusterShared are the parts of clusters that are the same for every
// Service. Each message is built once and shared by every cluster of every
// Service and call; none is ever changed after clusterParts builds it
// (translation output is read-only, see model.Resources).
type clusterShared struct {
	adsSource      *corev3.ConfigSource
	connectTimeout *durationpb.Duration
	// http2Options is the HttpProtocolOptions Any of HTTP/2 backends, nil
	// if it could not be marshalled (it always can).
	http2Options *anypb.Any
}

// clusterParts builds the clusterShared once per process (a sync.OnceValue:
// safe for concurrent use, never changed after).
var clusterParts = sync.OnceValue(func() clusterShared {
	h2, err := deterministicAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	})
	if err != nil {
		h2 = nil
	}
	return clusterShared{
		adsSource:      adsConfigSource(),
		connectTimeout: durationpb.New(connectTimeout),
		http2Options:   h2,
	}
})

// metadataNamespace is the filter_metadata key under which Switchboard
// records facts about a cluster that no client acts on (grpc-go reads
// cluster metadata only for its GCP authentication filter, and keeps an
// unknown Struct as-is; grpc-js-xds and C-core ignore it).
const metadataNamespace = "switchboard.io"

// httpProtocolOptionsName is the typed_extension_protocol_options key
// Envoy reads upstream HTTP options from. gRPC clients do not read the field.
const httpProtocolOptionsName = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// isHTTP2AppProtocol reports whether a Service port's appProtocol means the
// backends speak HTTP/2 (cleartext prior knowledge for h2c).
func isHTTP2AppProtocol(appProtocol string) bool {
	switch appProtocol {
	case "kubernetes.io/h2c", "http2", "grpc":
		return true
	}
	return false
}

// policyCluster returns the EDS cluster named canonical with pol applied and
// the port's appProtocol recorded: as filter_metadata
// "switchboard.io".appProtocol when set, and for the HTTP/2 family as
// HttpProtocolOptions with explicit HTTP/2, which Envoy needs to speak h2 to
// the backends (gRPC clients always do). On an error (a message that does
// not marshal, which the messages built here never are) it returns the
// plain cluster and the error.
func policyCluster(pol policy, canonical, appProtocol string) (*clusterv3.Cluster, error) {
	c := edsCluster(canonical)
	if err := pol.applyCluster(c); err != nil {
		return edsCluster(canonical), fmt.Errorf("policy not applied: %w", err)
	}
	if appProtocol == "" {
		return c, nil
	}
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		metadataNamespace: {Fields: map[string]*structpb.Value{"appProtocol": structpb.NewStringValue(appProtocol)}},
	}}
	if isHTTP2AppProtocol(appProtocol) {
		a := clusterParts().http2Options // shared, see clusterShared
		if a == nil {
			return edsCluster(canonical), fmt.Errorf("HTTP/2 protocol options could not be marshalled")
		}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsName: a}
	}
	return c, nil
}

// Field numbers of the Cluster fields that clusterWire writes.
const (
	clusterName      = 1 // Cluster.name
	clusterType      = 2 // Cluster.type (oneof cluster_discovery_type)
	clusterEDSConfig = 3 // Cluster.eds_cluster_config
	clusterTimeout   = 4 // Cluster.connect_timeout
	edsConfigSource  = 1 // Cluster.EdsClusterConfig.eds_config
	edsServiceName   = 2 // Cluster.EdsClusterConfig.service_name
	clusterTypeEDS   = 3 // Cluster.DiscoveryType EDS
)

// edsWire are the marshalled parts of edsCluster that are the same
// for every cluster: the ADS config source and the connect timeout.
// TestWireShortcuts checks that clusterWire, built from them, gives the
// bytes protobuf-go writes for the message.
type edsWire struct {
	configSource, timeout []byte
}

// edsParts builds the edsWire once per process (a sync.OnceValue: never
// changed after, safe for concurrent use).
var edsParts = sync.OnceValue(func() edsWire {
	sh := clusterParts()
	cs, err1 := deterministic.Marshal(sh.adsSource)
	to, err2 := deterministic.Marshal(sh.connectTimeout)
	if err1 != nil || err2 != nil {
		return edsWire{}
	}
	return edsWire{configSource: cs, timeout: to}
})

// append appends the wire form of edsCluster(name) to b: name,
// eds_cluster_config {eds_config, service_name}, connect_timeout, then the
// type, which protobuf-go writes after the plain fields (it is a oneof).
func (p edsWire) append(b []byte, name string) []byte {
	eds := sizeMessage(edsConfigSource, len(p.configSource)) + sizeMessage(edsServiceName, len(name))
	b = appendString(b, clusterName, name)
	b = appendHeader(b, clusterEDSConfig, eds)
	b = appendHeader(b, edsConfigSource, len(p.configSource))
	b = append(b, p.configSource...)
	b = appendString(b, edsServiceName, name)
	b = appendHeader(b, clusterTimeout, len(p.timeout))
	b = append(b, p.timeout...)
	b = protowire.AppendTag(b, clusterType, protowire.VarintType)
	return protowire.AppendVarint(b, clusterTypeEDS)
}

func (p edsWire) size(name string) int {
	eds := sizeMessage(edsConfigSource, len(p.configSource)) + sizeMessage(edsServiceName, len(name))
	return sizeMessage(clusterName, len(name)) + sizeMessage(clusterEDSConfig, eds) +
		sizeMessage(clusterTimeout, len(p.timeout)) + protowire.SizeTag(clusterType) + protowire.SizeVarint(clusterTypeEDS)
}

// clusterWire is policyCluster(pol, canonical, appProtocol) encoded; the
// plain EDS cluster, with no policy and no appProtocol, is written
// directly (the name is ASCII, see routeWire). policyErr is policyCluster's
// error (the cluster is then served without its policy); err is a cluster
// that does not encode.
func clusterWire(pol policy, canonical, appProtocol string) (e model.Encoded, policyErr, err error) {
	if p := edsParts(); p.configSource != nil && pol == (policy{}) && appProtocol == "" {
		return model.NewEncoded(canonical, p.append(make([]byte, 0, p.size(canonical)), canonical)), nil, nil
	}
	c, policyErr := policyCluster(pol, canonical, appProtocol)
	e, err = encode(canonical, c)
	return e, policyErr, err
}
