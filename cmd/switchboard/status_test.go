package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const debugClientsJSON = `[
  {"stream": 1, "protocol": "sotw", "node_id": "web-1", "class": "envoy", "zone": "z1",
   "types": {
     "lds": {"state": "SYNCED", "acked_at": "2030-01-01T00:00:00Z", "sent_at": "2030-01-01T00:00:00Z"},
     "rds": {"state": "SYNCED", "acked_at": "2030-01-01T00:00:00Z"},
     "cds": {"state": "STALE", "sent_at": "2030-01-01T00:01:00Z"},
     "eds": {"state": "NACKED", "last_nack_at": "2030-01-01T00:01:40Z", "last_nack": "bad weight"}
   }},
  {"stream": 2, "protocol": "sotw", "node_id": "", "types": {}}
]`

func statusServer(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/clients" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestStatusText checks the text output: one line per client, each type's
// state with its age.
func TestStatusText(t *testing.T) {
	addr := statusServer(t, debugClientsJSON)
	now := time.Date(2030, 1, 1, 0, 2, 0, 0, time.UTC)
	var out bytes.Buffer
	if err := status(context.Background(), statusOptions{Debug: addr, Output: "text", now: func() time.Time { return now }}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want a header and 2 clients:\n%s", len(lines), out.String())
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NODE CLASS ZONE LDS RDS CDS EDS" {
		t.Errorf("header = %q", lines[0])
	}
	want := []string{"web-1", "envoy", "z1", "SYNCED", "(2m0s)", "SYNCED", "(2m0s)", "STALE", "(1m0s)", "NACKED", "(20s)"}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != strings.Join(want, " ") {
		t.Errorf("client line = %q, want fields %q", lines[1], want)
	}
	if f := strings.Fields(lines[2]); strings.Join(f, " ") != "- - - NOT SENT NOT SENT NOT SENT NOT SENT" {
		t.Errorf("client without a node = %q", lines[2])
	}
}

// TestStatusJSON checks the JSON output.
func TestStatusJSON(t *testing.T) {
	addr := statusServer(t, debugClientsJSON)
	now := time.Date(2030, 1, 1, 0, 2, 0, 0, time.UTC)
	var out bytes.Buffer
	if err := status(context.Background(), statusOptions{Debug: addr, Output: "json", now: func() time.Time { return now }}, &out); err != nil {
		t.Fatal(err)
	}
	var got []clientLine
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if len(got) != 2 || got[0].NodeID != "web-1" || got[0].Types["eds"].State != "NACKED" ||
		got[0].Types["eds"].LastNack != "bad weight" || got[0].Types["eds"].Age != 20 || got[0].Types["cds"].State != "STALE" {
		t.Fatalf("json = %s", out.String())
	}
}

// TestStatusErrors checks flags and an unreachable or wrong address.
func TestStatusErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"status", "--output", "yaml"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "text or json") {
		t.Errorf("--output yaml: %v", err)
	}
	if err := run(context.Background(), []string{"status", "--help"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "switchboard status [flags]") || !strings.Contains(stdout.String(), "--debug address") {
		t.Errorf("status --help = %v, stdout:\n%s", err, stdout.String())
	}
	addr := statusServer(t, "not json")
	if err := status(context.Background(), statusOptions{Debug: addr, Output: "text", now: time.Now}, &stdout); err == nil || !strings.Contains(err.Error(), "decoding") {
		t.Errorf("a body that is not JSON: %v", err)
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	if err := status(context.Background(), statusOptions{Debug: strings.TrimPrefix(srv.URL, "http://"), Output: "text", now: time.Now}, &stdout); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a server without /debug/clients: %v", err)
	}
}

// TestStatusEscapesClientStrings: node ids, zones, classes and NACK details
// come from clients and are printed escaped, never raw: no terminal escape,
// C1 control, tab or newline from a client reaches the terminal.
func TestStatusEscapesClientStrings(t *testing.T) {
	body := `[{"stream": 1, "protocol": "sotw", "node_id": "evil\u001b]0;owned\u0007\u001b[2J", "class": "grpc\t", "zone": "z\u009b31m",
	   "types": {"eds": {"state": "NACKED", "last_nack_at": "2030-01-01T00:01:40Z", "last_nack": "bad\nweight\u001b[1A"}}}]`
	addr := statusServer(t, body)
	now := time.Date(2030, 1, 1, 0, 2, 0, 0, time.UTC)
	for _, output := range []string{"text", "json"} {
		var out bytes.Buffer
		if err := status(context.Background(), statusOptions{Debug: addr, Output: output, now: func() time.Time { return now }}, &out); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		if strings.ContainsAny(s, "\x1b\x07\u009b\t") {
			t.Errorf("--output %s printed a control character from the server: %q", output, s)
		}
		if output == "text" {
			if n := strings.Count(s, "\n"); n != 2 {
				t.Errorf("--output text: %d lines, want a header and one client (a newline in a value must not start a line): %q", n, s)
			}
			if !strings.Contains(s, `"evil\x1b]0;owned\a\x1b[2J"`) || !strings.Contains(s, `"z\u009b31m"`) {
				t.Errorf("--output text does not show the escaped node id and zone:\n%s", s)
			}
			continue
		}
		var got []clientLine
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].NodeID != `"evil\x1b]0;owned\a\x1b[2J"` || got[0].Types["eds"].LastNack != `"bad\nweight\x1b[1A"` {
			t.Errorf("--output json = %s", s)
		}
	}
}

// TestStatusBoundsWhatItReads: an endpoint that answers more than the cap
// is refused with an error naming the cap, not read into memory.
func TestStatusBoundsWhatItReads(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("["))
		entry := []byte(`{"stream": 1, "node_id": "` + strings.Repeat("x", 1000) + `"},`)
		for i := 0; i < 10000; i++ { // 10 MB, endless as far as status is concerned
			if _, err := w.Write(entry); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	err := status(context.Background(), statusOptions{Debug: strings.TrimPrefix(srv.URL, "http://"), Output: "text", now: time.Now, maxBytes: 1 << 20}, &out)
	if err == nil || !strings.Contains(err.Error(), "more than 1048576 bytes (maxDebugClientsBytes)") {
		t.Fatalf("status of a 10 MB answer with a 1 MiB cap: %v", err)
	}
	if maxDebugClientsBytes < 64<<20 {
		t.Errorf("maxDebugClientsBytes = %d: too small for a replica's 4096 connections", maxDebugClientsBytes)
	}
}

// TestStatusEveryReplica: with several --debug addresses status asks each
// replica and says which holds each client.
func TestStatusEveryReplica(t *testing.T) {
	a := statusServer(t, debugClientsJSON)
	b := statusServer(t, `[{"stream": 7, "protocol": "delta", "node_id": "api-1", "types": {}}]`)
	now := time.Date(2030, 1, 1, 0, 2, 0, 0, time.UTC)
	var out bytes.Buffer
	if err := status(context.Background(), statusOptions{Debug: a + ", " + b, Output: "text", now: func() time.Time { return now }}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "REPLICA") {
		t.Fatalf("want a header with REPLICA and 3 clients:\n%s", out.String())
	}
	if f := strings.Fields(lines[1]); f[0] != a || f[1] != "web-1" {
		t.Errorf("first client line = %q, want replica %s, node web-1", lines[1], a)
	}
	if f := strings.Fields(lines[3]); f[0] != b || f[1] != "api-1" {
		t.Errorf("last client line = %q, want replica %s, node api-1", lines[3], b)
	}
	if err := status(context.Background(), statusOptions{Debug: a + ",127.0.0.1:1", Output: "text", now: time.Now}, &out); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("a replica that does not answer: %v, want an error naming it", err)
	}
}
