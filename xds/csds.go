package xds

import (
	"context"
	"errors"
	"fmt"
	"io"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
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
//
// What it costs is bounded by the Server's Limits: at most
// MaxCSDSInFlight requests are answered at once (one more is refused with
// RESOURCE_EXHAUSTED naming the flag), and an answer holds clients, in
// stream order, only while it stays within MaxCSDSResponseBytes; the
// clients left out are counted (limit csds_response_bytes) and logged. A
// node matcher or exclude_resource_contents asks for less.
type CSDS struct {
	statusv3.UnimplementedClientStatusDiscoveryServiceServer
	srv      *Server
	opts     CSDSOptions
	inFlight chan struct{}
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
func NewCSDS(srv *Server, opts CSDSOptions) *CSDS {
	return &CSDS{srv: srv, opts: opts, inFlight: make(chan struct{}, srv.limits.MaxCSDSInFlight)}
}

// FetchClientStatus answers one request.
func (c *CSDS) FetchClientStatus(ctx context.Context, req *statusv3.ClientStatusRequest) (*statusv3.ClientStatusResponse, error) {
	if err := c.acquire(); err != nil {
		return nil, err
	}
	defer c.release()
	return c.status(ctx, req), nil
}

// acquire takes one of the MaxCSDSInFlight answers, or refuses.
func (c *CSDS) acquire() error {
	select {
	case c.inFlight <- struct{}{}:
		return nil
	default:
		max := c.srv.limits.MaxCSDSInFlight
		return c.srv.refuse(limitCSDSInFlight, "CSDS requests in flight", max+1, max)
	}
}

func (c *CSDS) release() { <-c.inFlight }

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
		if err := c.acquire(); err != nil {
			return err
		}
		err = ss.Send(c.status(ss.Context(), req))
		c.release()
		if err != nil {
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
	budget, size, left := c.srv.limits.MaxCSDSResponseBytes, 0, 0
	for _, st := range c.srv.sortedStreams() {
		cs := st.snapshot()
		if nodeID != "" && cs.NodeID != nodeID {
			continue
		}
		if left > 0 {
			left++
			continue
		}
		cc := st.config(ctx, cs)
		if scoped && ClientOf(cc.Node).Namespace != askerNS {
			continue
		}
		out := csdsConfig(cc, req.GetExcludeResourceContents())
		// Its size in the answer: the message, its tag and its length.
		n := proto.Size(out)
		n += 1 + protowire.SizeVarint(uint64(n))
		if size+n > budget {
			left++
			continue
		}
		size += n
		resp.Config = append(resp.Config, out)
	}
	if left > 0 {
		c.srv.refused(limitCSDSBytes, fmt.Sprintf("CSDS answer of %d clients; %d more streams left out", len(resp.Config), left), size, budget)
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
