package xds

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"

	"github.com/switchboard-xds/switchboard/model"
)

// A stream that never sends a request is ended after
// FirstRequestTimeout with DEADLINE_EXCEEDED naming the flag, and counted;
// a stream that sent one is not.
func TestStreamWithoutRequestEnded(t *testing.T) {
	h := newHarnessWith(t, ServerOptions{Limits: Limits{FirstRequestTimeout: 200 * time.Millisecond}})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	good := h.client(t)
	good.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	good.next()
	silent := h.client(t)
	refusedWith(t, silent.resps, silent.errc, codes.DeadlineExceeded, "--xds-first-request-timeout")
	if got := limitHits(h, limitFirstRequest); got != 1 {
		t.Errorf("limit_exceeded{first_request} = %v, want 1", got)
	}
	// The client that asked in time is still served.
	apply(t, h.cache, false, map[string]*model.Resources{"ns/a": svc("a", 2)})
	if w := weight(t, good.next(), 0); w != 2 {
		t.Errorf("the client that asked got weight %d, want 2", w)
	}
}

// A stream whose first request never ends (a 4 MiB message missing most
// of its bytes, what grpc would buffer whole) is ended after
// FirstRequestTimeout, so grpc frees what it buffered.
func TestUnfinishedFirstRequestEnded(t *testing.T) {
	h := newHarnessWith(t, ServerOptions{Limits: Limits{FirstRequestTimeout: 200 * time.Millisecond}})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	var out []byte
	out = append(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"...)
	out = appendFrame(out, 0x4, 0, 0, nil) // SETTINGS
	var hdrs []byte
	for _, kv := range [][2]string{
		{":method", "POST"},
		{":scheme", "http"},
		{":authority", "switchboard"},
		{":path", "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"},
		{"content-type", "application/grpc"},
		{"te", "trailers"},
	} {
		// HPACK literal without indexing, new name; every length < 127.
		hdrs = append(hdrs, 0, byte(len(kv[0])))
		hdrs = append(hdrs, kv[0]...)
		hdrs = append(hdrs, byte(len(kv[1])))
		hdrs = append(hdrs, kv[1]...)
	}
	out = appendFrame(out, 0x1, 0x4, 1, hdrs) // HEADERS, END_HEADERS, stream 1
	msg := make([]byte, 5+8<<10)
	binary.BigEndian.PutUint32(msg[1:5], 4<<20) // says 4 MiB, sends 8 KiB (one frame)
	out = appendFrame(out, 0x0, 0, 1, msg)
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	// The stream ends: trailers (HEADERS with END_STREAM) or RST_STREAM.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		typ, flags, stream, _, err := readFrame(c)
		if err != nil {
			t.Fatalf("the stream was not ended within 10s: %v", err)
		}
		if typ == 0x4 && flags&1 == 0 {
			if _, err := c.Write(appendFrame(nil, 0x4, 1, 0, nil)); err != nil {
				t.Fatal(err)
			}
		}
		if stream == 1 && (typ == 0x3 || typ == 0x1 && flags&1 != 0) {
			break
		}
	}
	if got := limitHits(h, limitFirstRequest); got != 1 {
		t.Errorf("limit_exceeded{first_request} = %v, want 1", got)
	}
}

func appendFrame(b []byte, typ, flags byte, stream uint32, payload []byte) []byte {
	b = append(b, byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload)), typ, flags)
	b = binary.BigEndian.AppendUint32(b, stream)
	return append(b, payload...)
}

func readFrame(r io.Reader) (typ, flags byte, stream uint32, payload []byte, err error) {
	var hdr [9]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, 0, nil, err
	}
	payload = make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, 0, 0, nil, err
	}
	return hdr[3], hdr[4], binary.BigEndian.Uint32(hdr[5:]) & 0x7fffffff, payload, nil
}

// With MaxConnections taken by sockets that never start a handshake, a
// client is served once HandshakeTimeout closes them, not after grpc's
// 120 s default.
func TestSilentConnectionsClosedAfterHandshakeTimeout(t *testing.T) {
	h := newHarnessWith(t, ServerOptions{Limits: Limits{MaxConnections: 2, HandshakeTimeout: 300 * time.Millisecond}})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	start := time.Now()
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		silent = append(silent, c)
	}
	for _, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var err error
		for err == nil { // the server's SETTINGS, then the close
			_, err = c.Read(make([]byte, 1024))
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a connection that sent nothing was still open after 10s")
		}
	}
	t.Logf("silent connections closed after %v", time.Since(start))
	newWellBehaved(t, h).check(t)
}

// A stream the client cancelled frees its MaxStreamsPerConnection slot
// when its context ends, not when its handler returns: here the handler
// is stuck (in an Authorize hook that does not watch its context), and
// new streams on the same connection are served all the same.
func TestCancelledStreamFreesItsSlotAtOnce(t *testing.T) {
	stuck := make(chan context.Context, 2)
	release := make(chan struct{})
	defer close(release)
	authorize := func(ctx context.Context, node *corev3.Node) error {
		if node.GetId() == "stuck" {
			stuck <- ctx
			<-release
		}
		return nil
	}
	h := newHarnessWith(t, ServerOptions{Limits: Limits{MaxStreamsPerConnection: 2}, Authorize: authorize})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	c, cancel := clientOn(t, h.conn)
	c.node = &corev3.Node{Id: "stuck"}
	c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	ctx := <-stuck
	cancel()
	<-ctx.Done() // the server saw the cancel; the handler is still stuck
	for range 2 {
		c := h.client(t)
		c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
		c.next()
	}
	if got := limitHits(h, limitStreams); got != 0 {
		t.Fatalf("limit_exceeded{streams_per_connection} = %v, want 0", got)
	}
}
