// Package meshclient is the client the Gateway API conformance suite's mesh
// tests exec in an echo Pod (integration/cmd/client, on the exec'd PATH as
// "client"):
//
//	client grpc://HOST:PORT [-H name:value]... [--count=N]
//	client http://HOST[:PORT]/PATH [--method=M] [-H name:value]... [--count=N]
//
// It prints each response in the Istio echo client's format (package
// integration/echo), which the suite parses.
//
// gRPC is a real grpc-go channel through its xds resolver (xds:///HOST:PORT,
// a bootstrap naming $SWITCHBOARD_XDS_SERVER with node metadata NAMESPACE =
// $POD_NAMESPACE, so short names resolve as in the Pod's namespace): what
// Switchboard serves proxyless gRPC clients decides every call.
//
// HTTP goes through no Envoy, since none runs here. The client subscribes to
// Switchboard as that Pod's Envoy sidecar would (an Envoy node of the Pod's
// namespace, delta ADS), resolves HOST with the sidecar's DNS table through
// the Pod's search path, and walks each request through the listener,
// route configuration and route matchers it holds with internal/envoysim
// (Config.RouteHTTP). It then does what Envoy's router would with the
// route: picks a weighted cluster at random, applies the request and
// response header modifiers (weighted cluster, then route, virtual host,
// route configuration, each removing before adding), the path and host
// rewrites, answers redirects itself (the 30x and Location) and direct
// responses, answers 404 where no route matches and the route's
// cluster-not-found code for a cluster it does not hold, and sends the
// request itself, over plain HTTP, to an endpoint of the chosen cluster (a
// Pod IP) — or to the original destination for a passthrough connection
// (a Pod IP or a port with no HTTP route). What it does not model: retries,
// timeouts, mirrors, and the headers Envoy adds of its own (x-request-id,
// x-forwarded-proto, x-envoy-*).
package meshclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Options are the command line and the Pod's environment.
type Options struct {
	Target  *url.URL
	Method  string      // HTTP only; GET when empty
	Headers [][2]string // -H name:value, in order
	Count   int         // responses to print; 1 when 0

	XDSServer     string // $SWITCHBOARD_XDS_SERVER, host:port of Switchboard's ADS
	PodName       string // $POD_NAME
	Namespace     string // $POD_NAMESPACE
	ClusterDomain string // cluster.local
	// Timeout bounds each call, and the wait for a sidecar's configuration.
	Timeout time.Duration
}

// Parse reads the command line (the URL first, then flags in either
// --flag=value or --flag value form) and the environment.
func Parse(args []string, getenv func(string) string) (Options, error) {
	o := Options{
		XDSServer: getenv("SWITCHBOARD_XDS_SERVER"), PodName: getenv("POD_NAME"),
		Namespace: getenv("POD_NAMESPACE"), ClusterDomain: "cluster.local", Timeout: 10 * time.Second,
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			if o.Target != nil {
				return o, fmt.Errorf("a second URL %q", a)
			}
			u, err := url.Parse(a)
			if err != nil {
				return o, fmt.Errorf("URL %q: %w", a, err)
			}
			if u.Scheme != "http" && u.Scheme != "grpc" {
				return o, fmt.Errorf("URL %q: scheme must be http or grpc", a)
			}
			o.Target = u
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue {
			if i+1 >= len(args) {
				return o, fmt.Errorf("flag %s needs a value", a)
			}
			i++
			value = args[i]
		}
		switch name {
		case "method", "X":
			o.Method = value
		case "H", "header":
			k, v, ok := strings.Cut(value, ":")
			if !ok || k == "" {
				return o, fmt.Errorf("header %q is not name:value", value)
			}
			o.Headers = append(o.Headers, [2]string{k, v})
		case "count":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				return o, fmt.Errorf("--count %q", value)
			}
			o.Count = n
		case "timeout":
			d, err := time.ParseDuration(value)
			if err != nil {
				return o, fmt.Errorf("--timeout: %w", err)
			}
			o.Timeout = d
		case "xds-server":
			o.XDSServer = value
		default:
			return o, fmt.Errorf("unknown flag %s", a)
		}
	}
	switch {
	case o.Target == nil:
		return o, errors.New("no URL")
	case o.XDSServer == "":
		return o, errors.New("no xDS server: set SWITCHBOARD_XDS_SERVER or --xds-server")
	case o.Namespace == "":
		return o, errors.New("no namespace: set POD_NAMESPACE")
	}
	if o.PodName == "" {
		o.PodName = "client"
	}
	if o.Count == 0 {
		o.Count = 1
	}
	return o, nil
}

// ErrFailed is returned by Run when some call failed (a gRPC status other
// than OK, or no HTTP response at all); the responses were still printed.
var ErrFailed = errors.New("some calls failed")

// Run makes the calls and prints every response to stdout.
func Run(ctx context.Context, o Options, stdout io.Writer) error {
	switch o.Target.Scheme {
	case "grpc":
		return runGRPC(ctx, o, stdout)
	default:
		return runHTTP(ctx, o, stdout)
	}
}

// hostPort splits the URL's host, with def as the port when it has none.
func hostPort(u *url.URL, def int) (string, int, error) {
	h := u.Hostname()
	p := def
	if s := u.Port(); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 65535 {
			return "", 0, fmt.Errorf("port %q", s)
		}
		p = n
	}
	return h, p, nil
}

// hostHeader is the Host a client sends: -H Host wins over the URL's.
func (o Options) hostHeader() string {
	for _, h := range o.Headers {
		if strings.EqualFold(h[0], "host") {
			return h[1]
		}
	}
	return o.Target.Host
}

func (o Options) requestHeaders() http.Header {
	hdr := http.Header{}
	for _, h := range o.Headers {
		if !strings.EqualFold(h[0], "host") {
			hdr.Add(h[0], h[1])
		}
	}
	return hdr
}

func splitHostPort(hp string) (string, string) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return hp, ""
	}
	return h, p
}
