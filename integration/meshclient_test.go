package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/switchboard-xds/switchboard/integration/echo"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/integration/meshclient"
)

// echoWorld is the conformance suite's mesh world in small, in a folder
// world: Services echo (both Pods), echo-v1 and echo-v2 (one each), ports
// 80 -> 8080 (http) and 7070 (grpc), and one echo backend per Pod on its
// own IP. It returns the namespace and the Pods' IPs.
func echoWorld(t *testing.T, w folderWorld) (string, []string) {
	t.Helper()
	ns := w.Namespace(t)
	subnet := subnets.Add(1)
	var ips []string
	var eps []harness.Endpoint
	ports := []harness.Port{{Name: "http", Port: 8080}, {Name: "grpc", Port: 7070}}
	for i, name := range []string{"echo-v1", "echo-v2"} {
		ip := fmt.Sprintf("10.244.%d.%d", subnet, i+1)
		s, err := echo.Start(echo.Options{IP: ip, HTTPPorts: []int{8080}, GRPCPorts: []int{7070}, Hostname: name + "-pod"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		ips = append(ips, ip)
		e := harness.Endpoint{Address: ip, State: harness.Ready, Zone: "z1", Pod: name + "-pod"}
		eps = append(eps, e)
		w.ApplySlice(t, newSlice(ns, name, name+"-1", ports, e))
	}
	w.ApplySlice(t, newSlice(ns, "echo", "echo-1", ports, eps...))
	for _, name := range []string{"echo", "echo-v1", "echo-v2"} {
		svc := newService(ns, name, harness.Port{Name: "http", Port: 80, AppProtocol: "http"}, harness.Port{Name: "grpc", Port: 7070})
		svc.Spec.Ports[0].TargetPort = intstr.FromInt32(8080)
		svc.Spec.ClusterIP = w.NewClusterIP()
		w.ApplyService(t, svc)
	}
	return ns, ips
}

// parsed is what the suite's parser reads of one response (a test-side
// reading of the same fields: conformance/utils/echo/parse.go).
type parsed struct {
	code, hostname string
	reqHeaders     []string
	respHeaders    []string
	url            string
}

var (
	codeRe     = regexp.MustCompile(`StatusCode=(.*)`)
	hostnameRe = regexp.MustCompile(`Hostname=(.*)`)
	urlRe      = regexp.MustCompile(`URL=(.*)`)
	reqHdrRe   = regexp.MustCompile(`RequestHeader=(.*)`)
	respHdrRe  = regexp.MustCompile(`ResponseHeader=(.*)`)
)

func parseBatch(out string) []parsed {
	var rs []parsed
	for sec := range strings.SplitSeq(out, "\n\n") {
		if strings.TrimSpace(sec) == "" {
			continue
		}
		var p parsed
		if m := codeRe.FindStringSubmatch(sec); m != nil {
			p.code = m[1]
		}
		if m := hostnameRe.FindStringSubmatch(sec); m != nil {
			p.hostname = m[1]
		}
		if m := urlRe.FindStringSubmatch(sec); m != nil {
			p.url = m[1]
		}
		for _, m := range reqHdrRe.FindAllStringSubmatch(sec, -1) {
			p.reqHeaders = append(p.reqHeaders, strings.ToLower(m[1]))
		}
		for _, m := range respHdrRe.FindAllStringSubmatch(sec, -1) {
			p.respHeaders = append(p.respHeaders, strings.ToLower(m[1]))
		}
		rs = append(rs, p)
	}
	return rs
}

// TestMeshClient: the client the conformance suite execs, against the
// binary on a manifest folder and real echo backends. HTTP, decided by
// the sidecar configuration Switchboard serves (envoysim) and sent to the
// chosen Pod: an 80/20 split with a response header set, a header match
// with a request header added, a redirect, a prefix rewrite, a Service
// without a route, a Pod IP (passthrough). gRPC through grpc-go's xds
// resolver: a 70/30 GRPCRoute. And the built command, as exec'd.
func TestMeshClient(t *testing.T) {
	bin := switchboardBinary(t)
	w := newFolderWorld(t)
	ns, ips := echoWorld(t, w)
	w.applyRoute(t, ns, "echo-http", fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo-http, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Header-Set, value: set}]}}]
    backendRefs: [{name: echo-v1, port: 80, weight: 80}, {name: echo-v2, port: 80, weight: 20}]
  - matches: [{headers: [{name: x-go, value: v2}]}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: X-Added, value: "yes"}]}}]
    backendRefs: [{name: echo-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /redirect}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org}}]
  - matches: [{path: {type: PathPrefix, value: /prefix}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]
    backendRefs: [{name: echo-v1, port: 80}]
`, ns))
	w.applyRoute(t, ns, "echo-grpc", fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo-grpc, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 7070}]
  rules:
  - backendRefs: [{name: echo-v1, port: 7070, weight: 70}, {name: echo-v2, port: 7070, weight: 30}]
`, ns))
	sb := startSwitchboard(t, bin, "--manifests", w.dir)
	env := map[string]string{"SWITCHBOARD_XDS_SERVER": sb.xds, "POD_NAME": "echo-v1-pod", "POD_NAMESPACE": ns}
	run := func(args ...string) []parsed {
		t.Helper()
		o, err := meshclient.Parse(args, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := meshclient.Run(ctx, o, &out); err != nil {
			t.Fatalf("client %q: %v\n%s", args, err, out.String())
		}
		return parseBatch(out.String())
	}
	count := func(rs []parsed) map[string]int {
		n := map[string]int{}
		for _, r := range rs {
			n[r.code+" "+r.hostname]++
		}
		return n
	}
	has := func(list []string, want string) bool {
		for _, s := range list {
			if s == want {
				return true
			}
		}
		return false
	}

	t.Run("http split", func(t *testing.T) {
		rs := run("http://echo/", "--count=200")
		n := count(rs)
		if len(rs) != 200 || n["200 echo-v1-pod"]+n["200 echo-v2-pod"] != 200 || n["200 echo-v2-pod"] < 20 || n["200 echo-v2-pod"] > 60 {
			t.Errorf("200 responses, want about 80/20 from echo-v1/echo-v2: %v", n)
		}
		for _, r := range rs {
			if !has(r.respHeaders, "x-header-set:set") {
				t.Fatalf("response headers %v: want X-Header-Set:set", r.respHeaders)
			}
		}
	})
	t.Run("http header match adds a request header", func(t *testing.T) {
		rs := run("http://echo/x", "-H", "x-go:v2", "--method=GET")
		if len(rs) != 1 || rs[0].hostname != "echo-v2-pod" || !has(rs[0].reqHeaders, "x-added:yes") || !has(rs[0].reqHeaders, "x-go:v2") {
			t.Errorf("got %+v, want echo-v2 with X-Added:yes", rs)
		}
	})
	t.Run("http redirect", func(t *testing.T) {
		rs := run("http://echo/redirect/a")
		if len(rs) != 1 || rs[0].code != "302" || rs[0].hostname != "" || !has(rs[0].respHeaders, "location:http://example.org/redirect/a") {
			t.Errorf("got %+v, want a 302 to http://example.org/redirect/a", rs)
		}
	})
	t.Run("http prefix rewrite", func(t *testing.T) {
		rs := run("http://echo/prefix/one")
		if len(rs) != 1 || rs[0].hostname != "echo-v1-pod" || rs[0].url != "/one" {
			t.Errorf("got %+v, want /one at echo-v1", rs)
		}
	})
	t.Run("http without a route, and a Pod IP", func(t *testing.T) {
		for _, target := range []string{"http://echo-v2/", "http://echo-v2." + ns + ".svc.cluster.local/", "http://" + ips[1] + ":8080/"} {
			rs := run(target, "-H", "Host:echo-v1")
			if len(rs) != 1 || rs[0].code != "200" || rs[0].hostname != "echo-v2-pod" || has(rs[0].respHeaders, "x-header-set:set") || !has(rs[0].reqHeaders, "host:echo-v1") {
				t.Errorf("%s: got %+v, want echo-v2, Host echo-v1, no X-Header-Set", target, rs)
			}
		}
	})
	t.Run("grpc split", func(t *testing.T) {
		rs := run("grpc://echo:7070", "--count=200")
		n := count(rs)
		if len(rs) != 200 || n["200 echo-v1-pod"]+n["200 echo-v2-pod"] != 200 || n["200 echo-v2-pod"] < 30 || n["200 echo-v2-pod"] > 90 {
			t.Errorf("200 calls, want about 70/30 from echo-v1/echo-v2: %v", n)
		}
	})
	t.Run("the command", func(t *testing.T) {
		client := filepath.Join(t.TempDir(), "client")
		if out, err := exec.Command("go", "build", "-o", client, "github.com/switchboard-xds/switchboard/integration/cmd/client").CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		cmd := exec.Command(client, "http://echo-v1/", "--count=3")
		cmd.Env = os.Environ()
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
		if n := count(parseBatch(string(out))); n["200 echo-v1-pod"] != 3 {
			t.Errorf("got %v, want 3 from echo-v1:\n%s", n, out)
		}
	})
}
