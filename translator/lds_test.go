package translator

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// TestAPIListenerWire checks that the hand-written wire form of the
// listener's HttpConnectionManager is byte for byte what deterministic
// marshalling of the message gives, for route names whose lengths cross
// every varint size that a name and the rds field can take.
func TestAPIListenerWire(t *testing.T) {
	for _, n := range []int{0, 1, 24, 100, 110, 111, 112, 127, 128, 129, 300, 16370, 16383, 16384, 16400, 1 << 21} {
		route := strings.Repeat("r", n)
		got := apiListener("l", route)
		want := listenerOf("l", newHCM(route))
		if got == nil || want == nil {
			t.Fatalf("len %d: got %v, want %v", n, got, want)
		}
		if !proto.Equal(got, want) {
			t.Errorf("len %d: (-want +got):\n%s", n, cmp.Diff(want, got, protocmp.Transform()))
		}
		gb, err1 := proto.MarshalOptions{Deterministic: true}.Marshal(got)
		wb, err2 := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		if err1 != nil || err2 != nil || string(gb) != string(wb) {
			t.Errorf("len %d: wire forms differ (%v, %v)", n, err1, err2)
		}
	}
	if l := apiListener("l", "bad\xff"); l != nil {
		t.Errorf("route name that is not UTF-8: got %v, want nil", l)
	}
	if _, err := AliasListener("alias\xff", "s.n.svc.cluster.local:80"); err == nil {
		t.Error("an alias that is not UTF-8 was encoded; want an error (proto.Marshal refuses such a string)")
	}
	want, err := encode("a", apiListener("a", "s.n.svc.cluster.local:80"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := AliasListener("a", "s.n.svc.cluster.local:80"); err != nil || string(got.Wire) != string(want.Wire) || got.Version != want.Version {
		t.Errorf("AliasListener = %x (%v), want the marshalled api listener %x", got.Wire, err, want.Wire)
	}
}
