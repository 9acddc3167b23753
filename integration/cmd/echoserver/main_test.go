package main

import (
	"io"
	"slices"
	"testing"
)

func TestParseFlags(t *testing.T) {
	env := map[string]string{"POD_NAME": "echo-v1-abc", "POD_IP": "10.245.0.7"}
	getenv := func(k string) string { return env[k] }
	// The suite's mesh manifests.
	o, err := parseFlags([]string{"--tcp=9090", "--port=8080", "--grpc=7070", "--port=8443", "--tls=8443", "--crt=/cert.crt", "--key=/cert.key"}, io.Discard, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.HTTPPorts, []int{8080, 8443}) || !slices.Equal(o.TLSPorts, []int{8443}) || !slices.Equal(o.GRPCPorts, []int{7070}) ||
		!slices.Equal(o.TCPPorts, []int{9090}) || o.CertFile != "/cert.crt" || o.Hostname != "echo-v1-abc" || o.IP != "10.245.0.7" {
		t.Errorf("parsed %+v", o)
	}
	// No port at all: the image's defaults.
	if o, err := parseFlags(nil, io.Discard, getenv); err != nil || !slices.Equal(o.HTTPPorts, []int{8080}) || !slices.Equal(o.GRPCPorts, []int{7070}) {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"--tls=8443"}, {"--port=x"}, {"--port=70000"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard, getenv); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
