package testbackend_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/switchboard-xds/switchboard/integration/testbackend"
)

func TestCheckCarriesBackendHeader(t *testing.T) {
	b, err := testbackend.Start("127.0.0.1:0", "backend-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Error(err)
		}
	})

	cc, err := grpc.NewClient(b.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	var hdr metadata.MD
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status = %v, want SERVING", resp.GetStatus())
	}
	if got := hdr.Get(testbackend.HeaderName); len(got) != 1 || got[0] != "backend-a" {
		t.Errorf("%s header = %q, want [backend-a]", testbackend.HeaderName, got)
	}

	// The raw-bytes call the node and python clients make must work too.
	var hdr2 metadata.MD
	var out []byte
	err = cc.Invoke(ctx, testbackend.CheckMethod, []byte{}, &out, grpc.Header(&hdr2), grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatalf("raw Check: %v", err)
	}
	if got := hdr2.Get(testbackend.HeaderName); len(got) != 1 || got[0] != "backend-a" {
		t.Errorf("raw call %s header = %q, want [backend-a]", testbackend.HeaderName, got)
	}
}

func TestStopIsIdempotent(t *testing.T) {
	b, err := testbackend.Start("127.0.0.1:0", "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestStartRejectsEmptyID(t *testing.T) {
	if _, err := testbackend.Start("127.0.0.1:0", ""); err == nil {
		t.Fatal("Start with empty id succeeded")
	}
}

// rawCodec passes bytes through, as the node and python clients do.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }
