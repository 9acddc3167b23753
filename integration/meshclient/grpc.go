package meshclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/integration/echo"
)

// grpcBootstrap is the bootstrap `switchboard bootstrap grpc --namespace`
// writes: one plaintext xDS server and the node with its namespace.
func grpcBootstrap(o Options) ([]byte, error) {
	return json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      o.XDSServer,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{
			"id":       o.PodName + "." + o.Namespace,
			"metadata": map[string]string{"NAMESPACE": o.Namespace},
		},
	})
}

// runGRPC makes o.Count Echo calls on one channel to xds:///HOST:PORT
// (7070 when the URL has no port). A call that fails prints its gRPC code
// as StatusCode; a call that succeeds prints 200, as the Istio client does.
func runGRPC(ctx context.Context, o Options, stdout io.Writer) error {
	host, port, err := hostPort(o.Target, 7070)
	if err != nil {
		return err
	}
	bs, err := grpcBootstrap(o)
	if err != nil {
		return err
	}
	// A resolver of its own per run, not GRPC_XDS_BOOTSTRAP: a process
	// reads that once, and tests run several Switchboards.
	rb, err := xds.NewXDSResolverWithConfigForTesting(bs)
	if err != nil {
		return fmt.Errorf("xds resolver: %w", err)
	}
	target := "xds:///" + net.JoinHostPort(host, strconv.Itoa(port))
	cc, err := grpc.NewClient(target, grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	defer cc.Close()
	md := metadata.MD{}
	for _, h := range o.Headers {
		md.Append(h[0], h[1])
	}
	failed := false
	for i := range o.Count {
		cctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, md), o.Timeout)
		var hdr metadata.MD
		out := new(wrapperspb.StringValue)
		err := cc.Invoke(cctx, echo.GRPCEchoMethod, wrapperspb.String(""), out, grpc.Header(&hdr))
		cancel()
		r := echo.Response{URL: o.Target.String(), Code: http.StatusOK, Headers: http.Header{}, Body: out.GetValue()}
		for k, vs := range hdr {
			for _, v := range vs {
				r.Headers.Add(k, v)
			}
		}
		if err != nil {
			failed = true
			st := status.Convert(err)
			r.Code, r.Error = int(st.Code()), st.Message()
		}
		if err := r.Write(stdout, i); err != nil {
			return err
		}
	}
	if failed {
		return ErrFailed
	}
	return nil
}
