package translator

import "testing"

func TestClientClass(t *testing.T) {
	for ua, want := range map[string]string{
		"gRPC C-core":              ClassCCore,
		"gRPC C-core linux Python": ClassCCore, // Debian's python3-grpcio 1.51, measured
		"gRPC Go":                  "",
		"gRPC Node Pure JS":        "",
		"gRPC C-corexyz":           "",
		"envoy":                    ClassEnvoy, // what every Envoy build sends
		"Envoy":                    "",
		"":                         "",
	} {
		if got := ClientClass(ua); got != want {
			t.Errorf("ClientClass(%q) = %q, want %q", ua, got, want)
		}
	}
}
