package xdsauth

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/switchboard-xds/switchboard/xds"
)

// Identity is a workload's SPIFFE identity in the Kubernetes shape,
// spiffe://<TrustDomain>/ns/<Namespace>/sa/<ServiceAccount>.
type Identity struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
}

// String returns the identity's SPIFFE ID.
func (id Identity) String() string {
	return "spiffe://" + id.TrustDomain + "/ns/" + id.Namespace + "/sa/" + id.ServiceAccount
}

// ParseIdentity reads a SPIFFE ID of the Kubernetes shape. Any other path
// is an error: the namespace is what Authorize checks.
func ParseIdentity(u *url.URL) (Identity, error) {
	if u == nil || u.Scheme != "spiffe" || u.Host == "" {
		return Identity{}, fmt.Errorf("%v is not a SPIFFE ID", u)
	}
	seg := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(seg) != 4 || seg[0] != "ns" || seg[1] == "" || seg[2] != "sa" || seg[3] == "" {
		return Identity{}, fmt.Errorf("SPIFFE ID %s is not of the form spiffe://<trust-domain>/ns/<namespace>/sa/<account>", u)
	}
	return Identity{TrustDomain: u.Host, Namespace: seg[1], ServiceAccount: seg[3]}, nil
}

// IdentityOf returns the identity in the verified client certificate of
// the connection ctx belongs to (a gRPC stream's context). The certificate
// must carry exactly one URI SAN, a SPIFFE ID of the Kubernetes shape;
// anything else is a codes.PermissionDenied error saying what is missing.
func IdentityOf(ctx context.Context) (Identity, error) {
	id, _, err := identityOf(ctx)
	return id, err
}

func identityOf(ctx context.Context) (Identity, string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, reasonNoCertificate, status.Error(codes.PermissionDenied, "no peer information: the xDS server needs a TLS client certificate")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 {
		return Identity{}, reasonNoCertificate, status.Error(codes.PermissionDenied, "no verified TLS client certificate")
	}
	leaf := info.State.VerifiedChains[0][0]
	// grpc-go sets SPIFFEID only for a certificate with exactly one URI
	// SAN that is a well-formed SPIFFE ID.
	if info.SPIFFEID == nil {
		return Identity{}, reasonNoSPIFFE, status.Errorf(codes.PermissionDenied,
			"client certificate %q has no SPIFFE ID: want exactly one URI SAN spiffe://<trust-domain>/ns/<namespace>/sa/<account>, have %d URI SANs",
			leaf.Subject.String(), len(leaf.URIs))
	}
	id, err := ParseIdentity(info.SPIFFEID)
	if err != nil {
		return Identity{}, reasonBadSPIFFE, status.Errorf(codes.PermissionDenied, "client certificate %q: %v", leaf.Subject.String(), err)
	}
	return id, "", nil
}

// Authorize decides whether the client on the stream of ctx may be served
// as node says. It is meant for xds.ServerOptions.Authorize with mutual
// TLS: the client needs a verified certificate with a SPIFFE identity
// (IdentityOf), and a node whose metadata NAMESPACE, when set, is the
// identity's namespace; the namespace is the one xds.ClientOf
// reads, which expands short listener names. A node without NAMESPACE is
// served, with full names only. Refusals are codes.PermissionDenied errors
// naming the node, the identity and both namespaces.
func (c *Credentials) Authorize(ctx context.Context, node *corev3.Node) error {
	id, reason, err := identityOf(ctx)
	if err == nil {
		if ns := xds.ClientOf(node).Namespace; ns != "" && ns != id.Namespace {
			reason = reasonNamespace
			err = status.Errorf(codes.PermissionDenied,
				"node %q says namespace %q (metadata NAMESPACE) but its certificate identity %s is in namespace %q",
				node.GetId(), ns, id, id.Namespace)
		}
	}
	if err != nil {
		c.log.Warn("xDS client refused", "node", node.GetId(), "reason", reason, "error", status.Convert(err).Message())
		c.opts.Metrics.refused(reason)
		return err
	}
	return nil
}
