package meshclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchboard-xds/switchboard/integration/echo"
	"github.com/switchboard-xds/switchboard/internal/envoysim"
)

// dnsListener is the sidecar's DNS listener (docs/envoy-sidecars.md).
const dnsListener = "dns"

// runHTTP subscribes as the Pod's sidecar, waits until what it holds
// decides the request completely, and then sends o.Count requests.
func runHTTP(ctx context.Context, o Options, stdout io.Writer) error {
	md, err := structpb.NewStruct(map[string]any{"NAMESPACE": o.Namespace})
	if err != nil {
		return err
	}
	node := &corev3.Node{Id: o.PodName + "." + o.Namespace, Cluster: o.Namespace, UserAgentName: "envoy", Metadata: md}
	sc, err := envoysim.Dial(ctx, o.XDSServer, node, true)
	if err != nil {
		return err
	}
	defer func() { _ = sc.Close() }()

	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var last error
	werr := sc.WaitFor(wctx, func(cfg *envoysim.Config) bool {
		last = o.decided(cfg)
		return last == nil && len(envoysim.Check(cfg)) == 0
	})
	cfg := sc.Snapshot()
	if werr != nil {
		if last == nil {
			last = errors.Join(envoysim.Check(cfg)...)
		}
		return fmt.Errorf("the sidecar's configuration does not decide %s within %v: %w", o.Target, o.Timeout, last)
	}
	dst, err := o.destination(cfg)
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout:       o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{Proxy: nil, DisableCompression: true},
	}
	defer client.CloseIdleConnections()
	failed := false
	for i := range o.Count {
		r := o.forward(ctx, cfg, client, dst)
		if r.Code == 0 {
			failed = true
		}
		if err := r.Write(stdout, i); err != nil {
			return err
		}
	}
	if failed {
		return ErrFailed
	}
	return nil
}

// destination is where the application's connection goes: the URL's IP,
// or its name as the Pod's resolver gets it from the sidecar's DNS table.
func (o Options) destination(cfg *envoysim.Config) (netip.AddrPort, error) {
	host, port, err := hostPort(o.Target, 80)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a, uint16(port)), nil
	}
	ips, err := cfg.ResolveInPod(dnsListener, o.Namespace, o.ClusterDomain, host, envoysim.TypeA)
	if err == nil && len(ips) == 0 {
		ips, err = cfg.ResolveInPod(dnsListener, o.Namespace, o.ClusterDomain, host, envoysim.TypeAAAA)
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: no address", host)
	}
	a, err := netip.ParseAddr(ips[0])
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// decided reports why cfg does not yet decide where the request goes
// (nil when it does): its name does not resolve, or the walk stops short
// of a route (or, for a connection that is not HTTP, of a cluster). A
// request no route matches is decided: Envoy answers it 404.
func (o Options) decided(cfg *envoysim.Config) error {
	dst, err := o.destination(cfg)
	if err != nil {
		return err
	}
	conn := envoysim.Conn{Protocol: "tcp", DstIP: dst.Addr().String(), DstPort: uint32(dst.Port()), Host: o.hostHeader()}
	_, err = cfg.RouteHTTP(envoysim.Request{Conn: conn, Path: o.Target.RequestURI()})
	if err == nil || errors.Is(err, envoysim.ErrNoVirtualHost) {
		return nil
	}
	if _, terr := cfg.Route(conn); terr != nil {
		return fmt.Errorf("%w; as TCP: %w", err, terr)
	}
	return nil
}

// forward is one request through the modelled sidecar. Code 0 means no
// response at all.
func (o Options) forward(ctx context.Context, cfg *envoysim.Config, client *http.Client, dst netip.AddrPort) echo.Response {
	method := o.Method
	if method == "" {
		method = http.MethodGet
	}
	path := o.Target.RequestURI()
	hostHdr := o.hostHeader()
	hdr := o.requestHeaders()
	resp := echo.Response{URL: o.Target.String(), Headers: http.Header{}}
	lower := map[string]string{}
	for k, vs := range hdr {
		lower[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	conn := envoysim.Conn{Protocol: "tcp", DstIP: dst.Addr().String(), DstPort: uint32(dst.Port()), Host: hostHdr}
	res, err := cfg.RouteHTTP(envoysim.Request{Conn: conn, Method: method, Path: path, Headers: lower})
	switch {
	case errors.Is(err, envoysim.ErrNoVirtualHost):
		resp.Code = http.StatusNotFound
		return resp
	case err != nil:
		// Not an HTTP port of a Service: a plain TCP hand-off (a Pod IP,
		// a TCP port), sent on as the application wrote it.
		tres, terr := cfg.Route(conn)
		if terr != nil || len(tres.Endpoints) == 0 {
			resp.Error = fmt.Sprintf("%v; as TCP: %v", err, terr)
			return resp
		}
		return o.send(ctx, client, method, pick(tres.Endpoints), path, hostHdr, hdr, nil)
	case res.Redirect != nil:
		resp.Code = redirectCode(res.Redirect)
		resp.Headers.Set("Location", redirectLocation(res.Redirect, res.Matched.GetMatch(), "http", hostHdr, path))
		return resp
	case res.Status != 0:
		resp.Code = int(res.Status)
		return resp
	}
	cluster, wc := pickCluster(res.Matched.GetRoute())
	if cluster == "" {
		resp.Code = http.StatusServiceUnavailable
		return resp
	}
	eps, _, err := cfg.Endpoints(cluster, dst)
	if errors.Is(err, envoysim.ErrNoCluster) {
		resp.Code = res.NotFoundCode
		return resp
	}
	if err != nil || len(eps) == 0 {
		resp.Code = http.StatusServiceUnavailable // no healthy upstream
		return resp
	}
	// The header mutations of each level, most specific first, as Envoy
	// applies them without most_specific_header_mutations_wins.
	levels := []headerLevel{
		{wc.GetRequestHeadersToAdd(), wc.GetRequestHeadersToRemove(), wc.GetResponseHeadersToAdd(), wc.GetResponseHeadersToRemove()},
		{res.Matched.GetRequestHeadersToAdd(), res.Matched.GetRequestHeadersToRemove(), res.Matched.GetResponseHeadersToAdd(), res.Matched.GetResponseHeadersToRemove()},
	}
	if rc := cfg.Routes[res.RouteConfig]; rc != nil {
		for _, vh := range rc.GetVirtualHosts() {
			if vh.GetName() == res.VirtualHost {
				levels = append(levels, headerLevel{vh.GetRequestHeadersToAdd(), vh.GetRequestHeadersToRemove(), vh.GetResponseHeadersToAdd(), vh.GetResponseHeadersToRemove()})
			}
		}
		levels = append(levels, headerLevel{rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(), rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove()})
	}
	for _, l := range levels {
		mutate(hdr, l.reqAdd, l.reqRemove)
	}
	a := res.Matched.GetRoute()
	path = rewritePath(a.GetPrefixRewrite(), a.GetRegexRewrite(), res.Matched.GetMatch(), path)
	if h := a.GetHostRewriteLiteral(); h != "" {
		hostHdr = h
	}
	return o.send(ctx, client, method, pick(eps), path, hostHdr, hdr, levels)
}

type headerLevel struct {
	reqAdd     []*corev3.HeaderValueOption
	reqRemove  []string
	respAdd    []*corev3.HeaderValueOption
	respRemove []string
}

// send makes the real request to endpoint and applies the response header
// mutations of levels to what comes back.
func (o Options) send(ctx context.Context, client *http.Client, method, endpoint, path, host string, hdr http.Header, levels []headerLevel) echo.Response {
	resp := echo.Response{URL: o.Target.String(), Headers: http.Header{}}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+endpoint+path, nil)
	if err != nil {
		resp.Error = err.Error()
		return resp
	}
	req.Header = hdr
	req.Host = host
	r, err := client.Do(req)
	if err != nil {
		resp.Error = err.Error()
		return resp
	}
	defer r.Body.Close()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		resp.Error = err.Error()
		return resp
	}
	resp.Code, resp.Body, resp.Headers = r.StatusCode, string(body), r.Header
	for _, l := range levels {
		mutate(resp.Headers, l.respAdd, l.respRemove)
	}
	return resp
}

// mutate applies one level's header mutations as Envoy's HeaderParser
// does: removals first, then each addition by its append action.
func mutate(h http.Header, add []*corev3.HeaderValueOption, remove []string) {
	for _, k := range remove {
		h.Del(k)
	}
	for _, o := range add {
		k, v := o.GetHeader().GetKey(), o.GetHeader().GetValue()
		action := o.GetAppendAction()
		//nolint:staticcheck // Envoy still reads the deprecated field, and it wins when set
		if legacy := o.GetAppend(); legacy != nil {
			action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			if legacy.GetValue() {
				action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
		}
		switch action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h.Add(k, v)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if len(h.Values(k)) == 0 {
				h.Set(k, v)
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h.Set(k, v)
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if len(h.Values(k)) > 0 {
				h.Set(k, v)
			}
		}
	}
}

// pickCluster chooses the route's cluster, or one of its weighted clusters
// with probability weight/total ("" when every weight is 0).
func pickCluster(a *routev3.RouteAction) (string, *routev3.WeightedCluster_ClusterWeight) {
	if c := a.GetCluster(); c != "" {
		return c, nil
	}
	var total uint32
	for _, c := range a.GetWeightedClusters().GetClusters() {
		total += c.GetWeight().GetValue()
	}
	if total == 0 {
		return "", nil
	}
	n := rand.Uint32N(total) //nolint:gosec // load balancing, not security
	for _, c := range a.GetWeightedClusters().GetClusters() {
		if n < c.GetWeight().GetValue() {
			return c.GetName(), c
		}
		n -= c.GetWeight().GetValue()
	}
	return "", nil
}

func pick(eps []string) string { return eps[rand.IntN(len(eps))] } //nolint:gosec // load balancing

// matchedPrefix is the prefix a prefix rewrite replaces: the route's
// prefix or path-separated prefix match.
func matchedPrefix(m *routev3.RouteMatch) string {
	if p := m.GetPrefix(); p != "" {
		return p
	}
	return m.GetPathSeparatedPrefix()
}

// rewritePath applies a route's prefix_rewrite (to the matched prefix) or
// regex_rewrite (to the path without its query, every match) as Envoy's
// RouteEntryImplBase::currentUrlPathAfterRewrite does; the query is kept.
func rewritePath(prefixRewrite string, rx *matcherv3.RegexMatchAndSubstitute, m *routev3.RouteMatch, path string) string {
	p, q, hasQ := strings.Cut(path, "?")
	switch {
	case prefixRewrite != "":
		if pre := matchedPrefix(m); strings.HasPrefix(p, pre) {
			p = prefixRewrite + p[len(pre):]
		}
	case rx.GetPattern().GetRegex() != "":
		if re, err := regexp.Compile(rx.GetPattern().GetRegex()); err == nil {
			p = re.ReplaceAllString(p, envoySubstitution(rx.GetSubstitution()))
		}
	}
	if hasQ {
		return p + "?" + q
	}
	return p
}

// envoySubstitution turns RE2 \N group references into Go's ${N}.
func envoySubstitution(s string) string {
	return regexp.MustCompile(`\\(\d)`).ReplaceAllString(s, `$${$1}`)
}

func redirectCode(rd *routev3.RedirectAction) int {
	switch rd.GetResponseCode() {
	case routev3.RedirectAction_FOUND:
		return http.StatusFound
	case routev3.RedirectAction_SEE_OTHER:
		return http.StatusSeeOther
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		return http.StatusTemporaryRedirect
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		return http.StatusPermanentRedirect
	default:
		return http.StatusMovedPermanently
	}
}

// redirectLocation builds the Location Envoy's redirect action answers
// with (RouteEntryImplBase::newUri): scheme, host and port replaced as
// the action says, a port left out when it is the scheme's default, the
// path replaced, its prefix or a regex rewritten.
func redirectLocation(rd *routev3.RedirectAction, m *routev3.RouteMatch, scheme, host, path string) string {
	origScheme := scheme
	if rd.GetHttpsRedirect() {
		scheme = "https"
	} else if s := rd.GetSchemeRedirect(); s != "" {
		scheme = s
	}
	h, port := splitHostPort(host)
	switch {
	case rd.GetPortRedirect() != 0:
		port = strconv.Itoa(int(rd.GetPortRedirect()))
	case rd.GetHostRedirect() != "":
		port = ""
	case scheme != origScheme && port == defaultPort(origScheme):
		port = ""
	}
	if rd.GetHostRedirect() != "" {
		h, _ = splitHostPort(rd.GetHostRedirect())
	}
	if port == defaultPort(scheme) {
		port = ""
	}
	if port != "" {
		h = net.JoinHostPort(h, port)
	} else if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		h = "[" + h + "]"
	}
	p, q, hasQ := strings.Cut(path, "?")
	switch {
	case rd.GetPathRedirect() != "":
		p = rd.GetPathRedirect()
	case rd.GetPrefixRewrite() != "":
		if pre := matchedPrefix(m); strings.HasPrefix(p, pre) {
			p = rd.GetPrefixRewrite() + p[len(pre):]
		}
	default:
		p = rewritePath("", rd.GetRegexRewrite(), m, p)
	}
	if hasQ && !rd.GetStripQuery() && !strings.Contains(p, "?") {
		p += "?" + q
	}
	return scheme + "://" + h + p
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}
