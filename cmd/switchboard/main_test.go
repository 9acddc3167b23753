package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/watcher"
)

func TestParseServeDefaults(t *testing.T) {
	o, err := parseServe(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.XDSAddress != ":18000" || o.AdminAddress != ":9090" || o.ClusterDomain != "cluster.local" || o.LogFormat != "text" {
		t.Fatalf("defaults = %+v", o)
	}
	if o.MinDelay != 5*time.Millisecond || o.MaxDelay != 50*time.Millisecond {
		t.Fatalf("coalescing defaults = %v/%v", o.MinDelay, o.MaxDelay)
	}
}

func TestParseServeNamespaces(t *testing.T) {
	o, err := parseServe([]string{"--namespaces", "a, b,,c", "--manifests", "dir", "--manifest-max-bytes", "1024"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Namespaces, "|") != "a|b|c" || o.Manifests != "dir" || o.ManifestMaxBytes != 1024 || o.ManifestSettle != watcher.DefaultSettleTime {
		t.Fatalf("got %+v", o)
	}
}

func TestParseServeErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kubeconfig", "k", "--manifests", "m"}, "exclude each other"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--xds-address", "nope"}, "--xds-address"},
		{[]string{"--cluster-domain", "Bad_Domain"}, "--cluster-domain"},
		{[]string{"--coalesce-min", "10ms", "--coalesce-max", "1ms"}, "coalesce"},
		{[]string{"--manifest-max-bytes", "0"}, "--manifest-max-bytes"},
		{[]string{"--manifest-settle", "-1s"}, "--manifest-settle"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		_, err := parseServe(tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseServe(%v) = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("parseServe(%v): error is not one line: %q", tc.args, err)
		}
	}
}

func TestBootstrapJSON(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"bootstrap", "grpc", "--server", "10.0.0.1:18000", "--node-id", "n1", "--zone", "z1", "--namespace", "ns"}, &out, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var b map[string]any
	if err := json.Unmarshal(out.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	servers := b["xds_servers"].([]any)
	s := servers[0].(map[string]any)
	if s["server_uri"] != "10.0.0.1:18000" {
		t.Errorf("server_uri = %v", s["server_uri"])
	}
	if creds := s["channel_creds"].([]any)[0].(map[string]any); creds["type"] != "insecure" {
		t.Errorf("channel_creds = %v", creds)
	}
	node := b["node"].(map[string]any)
	if node["id"] != "n1" || node["locality"].(map[string]any)["zone"] != "z1" || node["metadata"].(map[string]any)["NAMESPACE"] != "ns" {
		t.Errorf("node = %v", node)
	}
}

func TestBootstrapAlwaysHasLocality(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"bootstrap", "grpc", "--server", "h:1", "--node-id", "n"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	// grpc-js-xds refuses a node without a locality object, even an empty one.
	if !strings.Contains(out.String(), `"locality": {}`) {
		t.Fatalf("no empty locality object in:\n%s", out.String())
	}
}

func TestBootstrapErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bootstrap"},
		{"bootstrap", "envoy"},
		{"bootstrap", "grpc", "--node-id", "n"},
		{"bootstrap", "grpc", "--server", "nohostport", "--node-id", "n"},
		{"bootstrap", "grpc", "--server", "h:1"},
	} {
		if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%v) succeeded", args)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &bytes.Buffer{}); err != nil || !strings.HasPrefix(out.String(), "switchboard ") {
		t.Fatalf("version: %q %v", out.String(), err)
	}
}
