package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// adsStream is what both client shapes share: one ADS stream, SotW or
// delta, with its byte and response counts and its end.
type adsStream struct {
	id      int
	conn    *grpc.ClientConn
	stream  discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	delta   bool
	dstream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient

	bytesDown, bytesUp atomic.Int64
	responses          atomic.Int64
	err                error
	done               chan struct{}
	// synced is closed when the client first holds everything it wants.
	synced chan struct{}
}

// dial opens the stream's connection to addr (plaintext, loopback), with
// room for the largest response: a SnapshotCache response carries every
// subscribed assignment.
func (s *adsStream) dial(addr string) error {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return err
	}
	s.conn = conn
	return nil
}

// open opens the ADS stream of the stream's protocol on its connection,
// closing the connection when that fails.
func (s *adsStream) open(ctx context.Context) error {
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(s.conn)
	var err error
	if s.delta {
		s.dstream, err = ads.DeltaAggregatedResources(ctx)
	} else {
		s.stream, err = ads.StreamAggregatedResources(ctx)
	}
	if err != nil {
		_ = s.conn.Close()
		return fmt.Errorf("open ADS stream: %w", err)
	}
	return nil
}

// waitSynced waits until every stream is synced, failing when one ends
// or timeout passes first; what names the clients in errors.
func waitSynced(streams []*adsStream, timeout time.Duration, what string) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, s := range streams {
		select {
		case <-s.synced:
		case <-s.done:
			return fmt.Errorf("initial sync: %s %d ended: %w", what, s.id, s.err)
		case <-deadline.C:
			return fmt.Errorf("initial sync: %s %d has not received all its resources after %s", what, s.id, timeout)
		}
	}
	return nil
}

func (s *adsStream) send(req *discoveryv3.DiscoveryRequest) error {
	s.bytesUp.Add(int64(proto.Size(req)))
	if err := s.stream.Send(req); err != nil {
		return fmt.Errorf("client %d: send: %w", s.id, err)
	}
	return nil
}

func (s *adsStream) sendDelta(req *discoveryv3.DeltaDiscoveryRequest) error {
	s.bytesUp.Add(int64(proto.Size(req)))
	if err := s.dstream.Send(req); err != nil {
		return fmt.Errorf("client %d: send: %w", s.id, err)
	}
	return nil
}

// run receives with recvSotW or recvDelta until the stream ends, then
// closes done.
func (s *adsStream) run(recvSotW, recvDelta func() error) {
	defer close(s.done)
	for {
		recv := recvSotW
		if s.delta {
			recv = recvDelta
		}
		if err := recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				s.err = fmt.Errorf("client %d: %w", s.id, err)
			}
			return
		}
	}
}

func (s *adsStream) close() {
	if s.conn != nil {
		_ = s.conn.Close()
		<-s.done
	}
}
