package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/watcher"
	"github.com/switchboard-xds/switchboard/xds"
)

// parseServe parses args as "switchboard serve" does, with its flags and
// checks, without serving.
func parseServe(args []string) (serveOptions, error) {
	var f serveFlags
	cmd := newServeCommand(&f, 0)
	if err := cmd.ParseFlags(args); err != nil {
		return serveOptions{}, err
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return serveOptions{}, err
	}
	return f.options()
}

func TestParseServeDefaults(t *testing.T) {
	o, err := parseServe(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.XDSAddress != ":18000" || o.AdminAddress != ":9090" || o.ClusterDomain != "cluster.local" || o.LogFormat != "text" || !o.CSDS {
		t.Fatalf("defaults = %+v", o)
	}
	if o.MinDelay != 5*time.Millisecond || o.MaxDelay != 50*time.Millisecond {
		t.Fatalf("coalescing defaults = %v/%v", o.MinDelay, o.MaxDelay)
	}
	if o.MaxConnectionAge != 30*time.Minute || o.MaxConnectionAgeGrace != time.Minute {
		t.Fatalf("connection age defaults = %v/%v, want 30m/1m", o.MaxConnectionAge, o.MaxConnectionAgeGrace)
	}
	if o.Limits != xds.DefaultLimits() {
		t.Fatalf("limit defaults = %+v, want xds.DefaultLimits() %+v", o.Limits, xds.DefaultLimits())
	}
}

func TestParseServeLimits(t *testing.T) {
	o, err := parseServe([]string{
		"--xds-max-connections", "7", "--xds-max-names", "9", "--xds-nack-log-interval", "1m",
		"--xds-first-request-timeout", "3s", "--xds-handshake-timeout", "2s", "--xds-csds-max-in-flight", "4", "--xds-csds-max-response-bytes", "1000", "--xds-csds=false",
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.CSDS || o.Limits.FirstRequestTimeout != 3*time.Second || o.Limits.HandshakeTimeout != 2*time.Second || o.Limits.MaxCSDSInFlight != 4 || o.Limits.MaxCSDSResponseBytes != 1000 {
		t.Fatalf("csds %v, limits = %+v", o.CSDS, o.Limits)
	}
	if o.Limits.MaxConnections != 7 || o.Limits.MaxNames != 9 || o.Limits.NackLogInterval != time.Minute || o.Limits.MaxUnknownListeners != xds.DefaultLimits().MaxUnknownListeners {
		t.Fatalf("limits = %+v", o.Limits)
	}
}

func TestParseServeConnectionAge(t *testing.T) {
	o, err := parseServe([]string{"--max-connection-age", "0", "--max-connection-age-grace", "5s"})
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxConnectionAge != 0 || o.MaxConnectionAgeGrace != 5*time.Second {
		t.Fatalf("got %v/%v, want 0/5s", o.MaxConnectionAge, o.MaxConnectionAgeGrace)
	}
}

func TestParseServeNamespaces(t *testing.T) {
	o, err := parseServe([]string{"--namespaces", "a, b,,c", "--manifests", "dir", "--manifest-max-bytes", "1024"})
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
		{[]string{"--max-connection-age", "-1s"}, "--max-connection-age"},
		{[]string{"--max-connection-age-grace", "-1s"}, "--max-connection-age-grace"},
		{[]string{"--xds-max-names", "0"}, "--xds-max-names"},
		{[]string{"--xds-max-streams-per-connection", "-1"}, "--xds-max-streams-per-connection"},
		{[]string{"--xds-nack-log-interval", "0s"}, "--xds-nack-log-interval"},
		{[]string{"--xds-first-request-timeout", "0s"}, "--xds-first-request-timeout"},
		{[]string{"--xds-handshake-timeout", "-1s"}, "--xds-handshake-timeout"},
		{[]string{"--xds-csds-max-in-flight", "0"}, "--xds-csds-max-in-flight"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		_, err := parseServe(tc.args)
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

// TestBootstrapOutput: --output writes the same JSON to a file, readable
// by any user (the app container may run as another uid than the init
// container), and nothing to stdout.
func TestBootstrapOutput(t *testing.T) {
	args := []string{"bootstrap", "grpc", "--server", "h:1", "--node-id", "n", "--zone", "z"}
	var want, out bytes.Buffer
	if err := run(context.Background(), args, &want, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bootstrap.json")
	if err := run(context.Background(), append(args, "--output", path), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("stdout with --output: %q", out.String())
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Errorf("--output wrote\n%s\nstdout has\n%s", got, want.String())
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v (%v), want 0644", fi.Mode(), err)
	}
	if err := run(context.Background(), append(args, "--output", filepath.Join(path, "x")), &out, &bytes.Buffer{}); err == nil {
		t.Error("--output into a file as a directory: no error")
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
		{"bootstrap", "grpc", "--server", "h:1", "--node-id", "n", "extra"},
		{"bootstrap", "grpc", "--bogus"},
		{"version", "extra"},
		{"version", "--bogus"},
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
