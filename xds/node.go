package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// NodeNamespaceKey is the node metadata key that names a client's
// namespace (as Istio's proxies and our bootstraps write it).
const NodeNamespaceKey = "NAMESPACE"

// ClientOf returns the model.Client a node describes: its class from
// user_agent_name, its zone from locality, its namespace from metadata
// NodeNamespaceKey. A nil node is a client with nothing special.
func ClientOf(node *corev3.Node) model.Client {
	return model.Client{
		Class:     model.ClientClass(node.GetUserAgentName()),
		Zone:      node.GetLocality().GetZone(),
		Namespace: node.GetMetadata().GetFields()[NodeNamespaceKey].GetStringValue(),
	}
}
