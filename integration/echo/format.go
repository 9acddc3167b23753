// Package echo is both ends of the Gateway API conformance suite's mesh
// tests (sigs.k8s.io/gateway-api/conformance, tests/mesh): the backend every
// echo Pod runs (Server) and the text both ends speak, the format of Istio's
// echo server, which the suite parses (conformance/utils/echo/parse.go).
//
// The backend answers HTTP (plain or TLS) with a body of KEY=VALUE lines
// naming what it received — ServiceVersion, ServicePort, Host, URL, Method,
// Proto, IP, one RequestHeader=Name:Value line per header value — and the
// Hostname it runs as (the Pod's name). Its gRPC port answers the Echo
// method of GRPCServiceName (a StringValue in, the same text out), and its
// TCP ports echo what they read.
//
// The client command that the suite execs in a Pod (integration/cmd/client)
// prints each response as the Istio echo client does: "[i] Url=",
// "[i] StatusCode=", "[i] ResponseHeader=Name:Value" lines, then the body's
// lines prefixed "[i body] ", and a blank line after each response (the
// suite splits --count batches on blank lines).
package echo

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Field names of the format, as the suite's parser reads them.
const (
	FieldServiceVersion = "ServiceVersion"
	FieldServicePort    = "ServicePort"
	FieldHost           = "Host"
	FieldURL            = "URL"
	FieldMethod         = "Method"
	FieldProto          = "Proto"
	FieldIP             = "IP"
	FieldRequestHeader  = "RequestHeader"
	FieldHostname       = "Hostname"
	FieldStatusCode     = "StatusCode"
	FieldResponseHeader = "ResponseHeader"
)

// Request is what the backend reports of one request it received.
type Request struct {
	Version  string // the backend's --version, "" when unset
	Port     int    // the port it arrived on
	Host     string // Host header or :authority
	URL      string // path and query; the gRPC method for gRPC
	Method   string // HTTP method; "" for gRPC
	Proto    string // "HTTP/1.1", "HTTP/2.0", "GRPC", "TCP"
	IP       string // the peer's address, without its port
	Headers  http.Header
	Hostname string // the backend's name (its Pod's)
}

// Body is the text the backend answers with: one KEY=VALUE line per field,
// header lines sorted by name with each value on its own line, Hostname
// last.
func (r Request) Body() string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, v) }
	line(FieldServiceVersion, r.Version)
	line(FieldServicePort, fmt.Sprint(r.Port))
	line(FieldHost, r.Host)
	line(FieldURL, r.URL)
	if r.Method != "" {
		line(FieldMethod, r.Method)
	}
	line(FieldProto, r.Proto)
	line(FieldIP, r.IP)
	eachHeader(r.Headers, func(k, v string) { line(FieldRequestHeader, k+":"+v) })
	line(FieldHostname, r.Hostname)
	return b.String()
}

// Response is one answer as the client prints it.
type Response struct {
	URL     string      // what the client asked for
	Code    int         // HTTP status; 200 for a gRPC call that succeeded
	Headers http.Header // response headers, after what the sidecar applies
	Body    string      // the backend's Body, "" when none answered
	Error   string      // why the call failed, if it did
}

// Write prints r as response number i of a batch, followed by a blank
// line.
func (r Response) Write(w io.Writer, i int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "[%d] Url=%s\n", i, r.URL)
	fmt.Fprintf(&b, "[%d] %s=%d\n", i, FieldStatusCode, r.Code)
	eachHeader(r.Headers, func(k, v string) { fmt.Fprintf(&b, "[%d] %s=%s:%s\n", i, FieldResponseHeader, k, v) })
	if r.Error != "" {
		fmt.Fprintf(&b, "[%d] Error=%s\n", i, strings.ReplaceAll(r.Error, "\n", " "))
	}
	for l := range strings.SplitSeq(strings.TrimRight(r.Body, "\n"), "\n") {
		if l != "" {
			fmt.Fprintf(&b, "[%d body] %s\n", i, l)
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// eachHeader calls f with every value of h, names in sorted order.
func eachHeader(h http.Header, f func(name, value string)) {
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			f(k, v)
		}
	}
}
