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
type CSDS struct {
	statusv3.UnimplementedClientStatusDiscoveryServiceServer
	srv *Server
}

// NewCSDS returns the CSDS of srv.
func NewCSDS(srv *Server) *CSDS { return &CSDS{srv: srv} }

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
	for _, cc := range c.srv.ClientConfigs(ctx, nodeID) {
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
