package xds

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"sync/atomic"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchboard-xds/switchboard/model"
)

// typeIndex orders the four resource types that Switchboard serves. The
// order is the xDS "make before break" order: a client learns a listener,
// then its route, then the cluster, then the endpoints.
type typeIndex int

const (
	listenerType typeIndex = iota
	routeType
	clusterType
	endpointType
	numTypes
)

var typeURLs = [numTypes]string{
	listenerType: resourcev3.ListenerType,
	routeType:    resourcev3.RouteType,
	clusterType:  resourcev3.ClusterType,
	endpointType: resourcev3.EndpointType,
}

// typeLabels are the short names used in metrics and logs.
var typeLabels = [numTypes]string{
	listenerType: "lds",
	routeType:    "rds",
	clusterType:  "cds",
	endpointType: "eds",
}

func typeOf(url string) (typeIndex, bool) {
	for i, u := range typeURLs {
		if u == url {
			return typeIndex(i), true
		}
	}
	return 0, false
}

func (t typeIndex) String() string { return typeLabels[t] }

// fullState reports whether a SotW response of this type must carry every
// subscribed resource: for LDS and CDS a name missing from a response means
// the resource was deleted; RDS and EDS responses may carry only changes.
func (t typeIndex) fullState() bool { return t == listenerType || t == clusterType }

// Resource is one marshalled xDS resource. It is immutable once built and is
// shared by every stream that sends it: each version is marshalled once, not
// once per client. A Resource must not be copied (Any points into it).
//
// The cache holds several per Service, so its layout is kept lean: the Any
// is part of the struct (one allocation, not two) and the version is kept
// as a number, its wire form built only where it is sent.
type Resource struct {
	Name string
	// v is the content version (never 0): derived from the marshalled bytes
	// only, so the same content has the same version on every replica and
	// after every restart. Per-client state keeps it as it is; Version
	// formats it for the wire.
	v uint64
	// trigger is when the change that made this version happened
	// (UnixNano; 0 when unknown, as for the initial world): see
	// convergence.go.
	trigger int64
	// seq is the change (Cache.Apply) that installed this Resource in the
	// cache, or a later one that stands for it (see Cache.getView); 0 for
	// a Resource not in the cache (an unknown listener). Streams
	// compare it with the change they are in step with (state.go).
	seq uint64
	// envoyOnly marks a resource of the sidecar stage (scope.go).
	envoyOnly bool
	wire      anypb.Any
	// delta is the same resource as a delta response carries it, built
	// when a delta stream first sends it (most clients speak SotW).
	delta atomic.Pointer[discoveryv3.Resource]
}

// Version returns r's content version as it goes on the wire: 16 hex
// digits.
func (r *Resource) Version() string { return versionString(r.v) }

// Any returns r's marshalled bytes with their type URL, as a response
// carries them. The message is shared by every response: it must not be
// changed.
func (r *Resource) Any() *anypb.Any { return &r.wire }

// deltaResource returns r as a delta response carries it.
func (r *Resource) deltaResource() *discoveryv3.Resource {
	if d := r.delta.Load(); d != nil {
		return d
	}
	d := &discoveryv3.Resource{Name: r.Name, Version: r.Version(), Resource: r.Any()}
	if r.delta.CompareAndSwap(nil, d) {
		return d
	}
	return r.delta.Load()
}

func byName(a, b *Resource) int { return strings.Compare(a.Name, b.Name) }

// encodedResource makes a Resource of the given type URL from e, keeping
// its bytes and version; a version of 0 (an Encoded not made by
// model.NewEncoded) is computed here, so that no two contents share one.
func encodedResource(typeURL string, e model.Encoded) *Resource {
	v := e.Version
	if v == 0 {
		v = model.ContentVersion(e.Wire)
	}
	return &Resource{
		Name: e.Name,
		v:    v,
		wire: anypb.Any{TypeUrl: typeURL, Value: e.Wire},
	}
}

// restamped returns a copy of r that stands for r as installed by the
// change seq, sharing its bytes.
func (r *Resource) restamped(seq uint64) *Resource {
	return &Resource{Name: r.Name, v: r.v, trigger: r.trigger, seq: seq, envoyOnly: r.envoyOnly, wire: anypb.Any{TypeUrl: r.wire.TypeUrl, Value: r.wire.Value}}
}

// wireResource makes a Resource named name of the given type URL from its
// marshalled bytes b (which it keeps: b must not change afterwards).
func wireResource(name, typeURL string, b []byte) *Resource {
	return encodedResource(typeURL, model.NewEncoded(name, b))
}

// versionString is how a version goes on the wire: 16 hex digits.
func versionString(v uint64) string {
	var b [16]byte
	return string(appendVersion(b[:0], v))
}

// appendVersion appends versionString(v) to dst (no allocation when dst
// has room for 16 bytes).
func appendVersion(dst []byte, v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return hex.AppendEncode(dst, b[:])
}

// parseVersion reads a version a client says it holds (delta
// initial_resource_versions): one of ours, or 0 for any other string, which
// no resource has.
func parseVersion(s string) uint64 {
	if len(s) != 16 {
		return 0
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0
	}
	return v
}
