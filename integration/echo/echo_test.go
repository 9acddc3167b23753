package echo_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/integration/echo"
)

func start(t *testing.T) *echo.Server {
	t.Helper()
	s, err := echo.Start(echo.Options{
		IP: "127.0.0.1", HTTPPorts: []int{0}, TLSPorts: []int{0}, GRPCPorts: []int{0}, TCPPorts: []int{0},
		Hostname: "echo-v1-abc", Version: "v1",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func lines(body string) map[string][]string {
	out := map[string][]string{}
	for l := range strings.SplitSeq(strings.TrimSpace(body), "\n") {
		k, v, _ := strings.Cut(l, "=")
		out[k] = append(out[k], v)
	}
	return out
}

// TestHTTP: the body names the backend, the request and every header
// value on its own line.
func TestHTTP(t *testing.T) {
	s := start(t)
	plain, err := echo.Start(echo.Options{IP: "127.0.0.1", HTTPPorts: []int{0}, Hostname: "echo-v2-xyz"})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	req, err := http.NewRequest(http.MethodPost, "http://"+plain.Addrs("http")[0]+"/p/q?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "echo"
	req.Header.Add("X-A", "one")
	req.Header.Add("X-A", "two")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	got := lines(string(b))
	for k, want := range map[string]string{"Hostname": "echo-v2-xyz", "Host": "echo", "URL": "/p/q?x=1", "Method": "POST", "Proto": "HTTP/1.1", "IP": "127.0.0.1"} {
		if len(got[k]) != 1 || got[k][0] != want {
			t.Errorf("%s = %v, want %s\n%s", k, got[k], want, b)
		}
	}
	if h := strings.Join(got["RequestHeader"], "|"); !strings.Contains(h, "X-A:one|X-A:two") || !strings.Contains(h, "Host:echo") {
		t.Errorf("RequestHeader lines %q: want X-A twice and Host", h)
	}
	if !strings.HasSuffix(strings.TrimSpace(string(b)), "Hostname=echo-v2-xyz") {
		t.Errorf("Hostname is not the last line:\n%s", b)
	}

	// TLS, with a certificate made on the spot.
	tc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a self-signed test certificate
	resp, err = tc.Get("https://" + s.Addrs("https")[0] + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := lines(string(b)); got["Hostname"][0] != "echo-v1-abc" || got["ServiceVersion"][0] != "v1" {
		t.Errorf("TLS body:\n%s", b)
	}
}

// TestGRPCAndTCP: the gRPC Echo method answers with the same body; the TCP
// port echoes.
func TestGRPCAndTCP(t *testing.T) {
	s := start(t)
	cc, err := grpc.NewClient(s.Addrs("grpc")[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(metadata.AppendToOutgoingContext(ctx, "x-b", "v"), echo.GRPCEchoMethod, wrapperspb.String(""), out); err != nil {
		t.Fatal(err)
	}
	got := lines(out.GetValue())
	if got["Hostname"][0] != "echo-v1-abc" || got["Proto"][0] != "GRPC" || got["URL"][0] != echo.GRPCEchoMethod {
		t.Errorf("gRPC body:\n%s", out.GetValue())
	}
	if !strings.Contains(strings.Join(got["RequestHeader"], "|"), "X-B:v") {
		t.Errorf("gRPC body has no X-B:v:\n%s", out.GetValue())
	}

	c, err := net.Dial("tcp", s.Addrs("tcp")[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || l != "ping\n" {
		t.Errorf("TCP echo: %q, %v", l, err)
	}
}

// TestResponseWrite: one block per response, each ended by a blank line,
// no blank line inside (the suite splits --count batches on them).
func TestResponseWrite(t *testing.T) {
	var b strings.Builder
	for i := range 2 {
		r := echo.Response{URL: "http://echo/", Code: 200, Headers: http.Header{"X-Header-Set": {"set"}}, Body: "Host=echo\nHostname=echo-v1-abc\n"}
		if err := r.Write(&b, i); err != nil {
			t.Fatal(err)
		}
	}
	want := "[0] Url=http://echo/\n[0] StatusCode=200\n[0] ResponseHeader=X-Header-Set:set\n[0 body] Host=echo\n[0 body] Hostname=echo-v1-abc\n\n" +
		"[1] Url=http://echo/\n[1] StatusCode=200\n[1] ResponseHeader=X-Header-Set:set\n[1 body] Host=echo\n[1 body] Hostname=echo-v1-abc\n\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
