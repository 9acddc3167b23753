//go:build vtprotobuf

package translator

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

var vtMarshal = func(cla *endpointv3.ClusterLoadAssignment) ([]byte, error) { return cla.MarshalVTStrict() }

var vtSmall = map[string]func(name string, aliases []string) ([]byte, error){
	"listener": func(name string, _ []string) ([]byte, error) {
		hcm, err := newHCM(name).MarshalVTStrict()
		if err != nil {
			return nil, err
		}
		lis := &listenerv3.Listener{Name: name, ApiListener: &listenerv3.ApiListener{ApiListener: &anypb.Any{TypeUrl: "type.googleapis.com/" + string((&hcmv3.HttpConnectionManager{}).ProtoReflect().Descriptor().FullName()), Value: hcm}}}
		return lis.MarshalVTStrict()
	},
	"route": func(name string, aliases []string) ([]byte, error) {
		var rc *routev3.RouteConfiguration = routeConfiguration(name, aliases, nil)
		return rc.MarshalVTStrict()
	},
	"cluster": func(name string, _ []string) ([]byte, error) {
		var c *clusterv3.Cluster = edsCluster(name)
		return c.MarshalVTStrict()
	},
}
