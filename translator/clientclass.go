package translator

import (
	"strings"
)

// ClassCCore is the client class of gRPC C-core (node user_agent_name
// "gRPC C-core", followed by the platform and wrapping language, e.g.
// "gRPC C-core linux Python"): Debian's python3-grpcio 1.51 crashes (SIGSEGV) on a
// ring_hash cluster, with or without the custom LB config, so clients of
// this class get ring_hash clusters as round robin (see ClusterVariant).
const ClassCCore = "c-core"

// ClassEnvoy is the client class of Envoy, whose node user_agent_name is
// "envoy". Envoy reads an endpoint's health_status, so clients of this class
// get serving, terminating endpoints as DRAINING (see ClassAssignment).
const ClassEnvoy = "envoy"

// ClientClass returns the class of a client from its node's
// user_agent_name, or "" for a client that needs nothing special.
func ClientClass(userAgentName string) string {
	if userAgentName == "gRPC C-core" || strings.HasPrefix(userAgentName, "gRPC C-core ") {
		return ClassCCore
	}
	if userAgentName == "envoy" {
		return ClassEnvoy
	}
	return ""
}

// ClusterVariant is the Cluster that clients of Class get in place of the
// cluster of the same name in Resources.Clusters.
type ClusterVariant struct {
	Class   string
	Cluster Encoded
}
