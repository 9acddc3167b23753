package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-xds/switchboard/pipeline"
	"github.com/switchboard-xds/switchboard/xds"
)

func TestParseServeTLSAndDebug(t *testing.T) {
	o, err := parseServe(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.DebugAddress != "127.0.0.1:9091" || o.XDSTLS != (xdsTLSOptions{}) {
		t.Fatalf("defaults: debug %q, tls %+v", o.DebugAddress, o.XDSTLS)
	}
	o, err = parseServe([]string{"--debug-address", "", "--xds-tls-cert", "c", "--xds-tls-key", "k", "--xds-client-ca", "ca"})
	if err != nil {
		t.Fatal(err)
	}
	if o.DebugAddress != "" || o.XDSTLS != (xdsTLSOptions{Cert: "c", Key: "k", ClientCA: "ca"}) {
		t.Fatalf("got debug %q, tls %+v", o.DebugAddress, o.XDSTLS)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--xds-tls-cert", "c"}, "go together"},
		{[]string{"--xds-tls-key", "k"}, "go together"},
		{[]string{"--xds-client-ca", "ca"}, "needs --xds-tls-cert"},
		{[]string{"--debug-address", "nope"}, "--debug-address"},
	} {
		if _, err := parseServe(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseServe(%v) = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestServeRefusesTLSFilesThatDoNotLoad(t *testing.T) {
	o, err := parseServe([]string{"--manifests", t.TempDir(), "--xds-tls-cert", "/nonexistent/c", "--xds-tls-key", "/nonexistent/k"})
	if err != nil {
		t.Fatal(err)
	}
	err = serve(context.Background(), o, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--xds-tls-cert") || !strings.Contains(err.Error(), "/nonexistent/c") {
		t.Fatalf("serve = %v, want an error naming the flag and the file", err)
	}
}

// TestDebugViewsOnlyOnDebugHandler: /debug/* is not on the admin port.
func TestDebugViewsOnlyOnDebugHandler(t *testing.T) {
	cache := pipeline.NewCache(nil)
	admin := adminHandler(prometheus.NewRegistry(), cache)
	debug := debugHandler(xds.NewServer(cache, xds.ServerOptions{}), pipeline.NewSyncer(cache, pipeline.Options{}))
	for _, path := range []string{"/debug/clients", "/debug/diagnostics"} {
		if code := get(admin, path).Code; code != http.StatusNotFound {
			t.Errorf("admin %s = %d, want 404", path, code)
		}
		rec := get(debug, path)
		var v []any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &v) != nil {
			t.Errorf("debug %s = %d %q, want 200 and a JSON list", path, rec.Code, rec.Body.String())
		}
	}
	for _, path := range []string{"/metrics", "/healthz"} {
		if code := get(admin, path).Code; code != http.StatusOK {
			t.Errorf("admin %s = %d, want 200", path, code)
		}
		if code := get(debug, path).Code; code != http.StatusNotFound {
			t.Errorf("debug %s = %d, want 404", path, code)
		}
	}
}

func get(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestBootstrapTLS(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{
		"bootstrap", "grpc", "--server", "h:1", "--node-id", "n",
		"--tls-ca", "/etc/xds/ca.pem", "--tls-cert", "/etc/xds/tls.crt", "--tls-key", "/etc/xds/tls.key",
	}, &out, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		XDSServers []struct {
			ChannelCreds []map[string]any `json:"channel_creds"`
		} `json:"xds_servers"`
	}
	if err := json.Unmarshal(out.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(b.XDSServers[0].ChannelCreds)
	want := `[{"config":{"ca_certificate_file":"/etc/xds/ca.pem","certificate_file":"/etc/xds/tls.crt","private_key_file":"/etc/xds/tls.key"},"type":"tls"}]`
	if string(got) != want {
		t.Errorf("channel_creds = %s, want %s", got, want)
	}

	out.Reset()
	if err := run(context.Background(), []string{"bootstrap", "grpc", "--server", "h:1", "--node-id", "n", "--tls-ca", "ca.pem"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"ca_certificate_file": "ca.pem"`) || strings.Contains(out.String(), "certificate_file\": \"\"") {
		t.Errorf("TLS without a client certificate:\n%s", out.String())
	}
	for _, args := range [][]string{
		{"--tls-ca", "ca", "--tls-cert", "c"},
		{"--tls-ca", "ca", "--tls-key", "k"},
		{"--tls-cert", "c", "--tls-key", "k"},
	} {
		if err := run(context.Background(), append([]string{"bootstrap", "grpc", "--server", "h:1", "--node-id", "n"}, args...), &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("bootstrap %v succeeded", args)
		}
	}
}
