package xds

import (
	"context"
	"errors"
	"io"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// CSDS is the Client Status Discovery Service
// (envoy.service.status.v3.ClientStatusDiscoveryService) over a Server:
// every connected client with a generic_xds_config per name it subscribed
// to or was sent. Register it on the xDS grpc.Server with
// statusv3.RegisterClientStatusDiscoveryServiceServer.
//
// A request's node matchers are honoured when they match the node id
// exactly (string_match exact); other matchers are ignored, and every
// client is returned. exclude_resource_contents leaves xds_config out.
//
// Statuses are per client and type, as the server tracks them: a name gets
// its type's state (the client ACKed, has not answered, or NACKed the
// latest response of the type). A name subscribed and not sent is
// NOT_SENT, REQUESTED when the cache has it, DOES_NOT_EXIST when not.
//
// With CSDSOptions.AskerNamespace (mutual TLS), an asker is told only about
// the clients of its own namespace (node metadata NAMESPACE, which mTLS
// checks against the client's identity), so CSDS does not show one
// namespace's sidecars what another's hold; without it, about every client.
type CSDS struct {
	statusv3.UnimplementedClientStatusDiscoveryServiceServer
	srv  *Server
	opts CSDSOptions
}

// CSDSOptions configure a CSDS.
type CSDSOptions struct {
	// AskerNamespace returns the namespace of whoever sent a request
	// (its verified identity, from the stream's context), or an error when
	// it has none; the request is then answered with no clients. Nil means
	// every asker may see every client.
	AskerNamespace func(ctx context.Context) (string, error)
}

// NewCSDS returns the CSDS of srv.
func NewCSDS(srv *Server, opts CSDSOptions) *CSDS { return &CSDS{srv: srv, opts: opts} }

// FetchClientStatus answers one request.
func (c *CSDS) FetchClientStatus(ctx context.Context, req *statusv3.ClientStatusRequest) (*statusv3.ClientStatusResponse, error) {
	return c.status(ctx, req), nil
}

// StreamClientStatus answers each request of the stream in turn.
func (c *CSDS) StreamClientStatus(ss statusv3.ClientStatusDiscoveryService_StreamClientStatusServer) error {
	for {
		req, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ss.Send(c.status(ss.Context(), req)); err != nil {
			return err
		}
	}
}

func (c *CSDS) status(ctx context.Context, req *statusv3.ClientStatusRequest) *statusv3.ClientStatusResponse {
	nodeID := ""
	for _, m := range req.GetNodeMatchers() {
		if id := m.GetNodeId().GetExact(); id != "" {
			nodeID = id
		}
	}
	resp := &statusv3.ClientStatusResponse{}
	scoped, askerNS := false, ""
	if c.opts.AskerNamespace != nil {
		ns, err := c.opts.AskerNamespace(ctx)
		if err != nil {
			return resp
		}
		scoped, askerNS = true, ns
	}
	for _, cc := range c.srv.ClientConfigs(ctx, nodeID) {
		if scoped && ClientOf(cc.Node).Namespace != askerNS {
			continue
		}
		resp.Config = append(resp.Config, csdsConfig(cc, req.GetExcludeResourceContents()))
	}
	return resp
}

// csdsConfig is one client's ClientConfig.
func csdsConfig(cc ClientConfig, exclude bool) *statusv3.ClientConfig {
	out := &statusv3.ClientConfig{Node: cc.Node}
	for t := range numTypes {
		ts := cc.Status.Types[t]
		state := ts.State()
		for _, n := range cc.Types[t] {
			g := &statusv3.ClientConfig_GenericXdsConfig{
				TypeUrl:     typeURLs[t],
				Name:        n.Name,
				VersionInfo: n.Version,
			}
			if !exclude {
				g.XdsConfig = n.Resource
			}
			if !ts.SentAt.IsZero() {
				g.LastUpdated = timestamppb.New(ts.SentAt)
			}
			switch {
			case !n.Sent && n.Exists:
				g.ConfigStatus, g.ClientStatus = statusv3.ConfigStatus_NOT_SENT, adminv3.ClientResourceStatus_REQUESTED
			case !n.Sent:
				g.ConfigStatus, g.ClientStatus = statusv3.ConfigStatus_NOT_SENT, adminv3.ClientResourceStatus_DOES_NOT_EXIST
			case state == StateSynced:
				g.ConfigStatus, g.ClientStatus = statusv3.ConfigStatus_SYNCED, adminv3.ClientResourceStatus_ACKED
			case state == StateNacked:
				g.ConfigStatus, g.ClientStatus = statusv3.ConfigStatus_ERROR, adminv3.ClientResourceStatus_NACKED
				g.ErrorState = &adminv3.UpdateFailureState{
					LastUpdateAttempt: timestamppb.New(ts.LastNackAt),
					Details:           ts.LastNack,
					VersionInfo:       ts.SentVersion,
				}
			default:
				g.ConfigStatus, g.ClientStatus = statusv3.ConfigStatus_STALE, adminv3.ClientResourceStatus_REQUESTED
			}
			out.GenericXdsConfigs = append(out.GenericXdsConfigs, g)
		}
	}
	return out
}
