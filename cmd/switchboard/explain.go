package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// explainOptions are the flags of "switchboard explain".
type explainOptions struct {
	// Debug lists the --debug-address of every replica to ask.
	Debug []string
	Node  string
	// Host is HOST[:PORT] to walk, "" for none.
	Host string
	now  func() time.Time
}

// newExplainCommand is "switchboard explain".
func newExplainCommand() *cobra.Command {
	o := explainOptions{now: time.Now}
	var debug string
	cmd := &cobra.Command{
		Use:   "explain NODE_ID [HOST[:PORT]] [flags]",
		Short: "What one client holds, what it lacks and since when; the walk to a host's endpoints",
		Long: "Explain what one connected xDS client holds: per resource, the version it was sent, the one it should have and since when;\n" +
			"with a host, the walk listener -> route -> cluster -> endpoints as the client holds it.",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("explain: want NODE_ID [HOST[:PORT]], got %d arguments", len(args))
			}
			return nil
		},
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(c *cobra.Command, args []string) error {
			o.Node = args[0]
			if len(args) > 1 {
				o.Host = args[1]
			}
			o.Debug = splitAddresses(debug)
			if len(o.Debug) == 0 {
				return usageErr(errors.New("explain: --debug names no address"))
			}
			return explain(c.Context(), o, c.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&debug, "debug", "127.0.0.1:9091", "the --debug-address of the switchboard to ask; a comma-separated list asks each replica (behind a Service: one per pod) and says which holds the client")
	return cmd
}

// explain finds the replica that holds o.Node and prints what it holds.
func explain(ctx context.Context, o explainOptions, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var found []dumpStream
	var where string
	var misses []string
	for _, addr := range o.Debug {
		body, code, err := fetchDebug(ctx, addr, "/debug/config_dump?node="+url.QueryEscape(o.Node), maxDebugClientsBytes)
		switch {
		case err != nil:
			misses = append(misses, fmt.Sprintf("%s: %v", addr, err))
			continue
		case code == http.StatusNotFound:
			misses = append(misses, addr+": not connected there")
			continue
		case code != http.StatusOK:
			misses = append(misses, fmt.Sprintf("%s: HTTP %d", addr, code))
			continue
		}
		if err := json.Unmarshal(body, &found); err != nil {
			return fmt.Errorf("explain: decoding %s's config_dump: %w", addr, err)
		}
		where = addr
		break
	}
	if where == "" {
		return fmt.Errorf("explain: no replica holds a client with node id %q (%s)", printable(o.Node), strings.Join(misses, "; "))
	}
	now := o.now()
	for _, s := range found {
		fmt.Fprintf(stdout, "client %s, stream %d, on %s\n", printable(s.NodeID), s.Stream, where)
		if s.Unanswered {
			fmt.Fprintln(stdout, "  the stream did not answer: its client is not reading what it is sent")
			continue
		}
		for _, t := range typeNames {
			dt, ok := s.Types[t]
			if !ok {
				continue
			}
			fmt.Fprintf(stdout, "  %s %s: sent %s%s, acked %s%s\n", t, dt.State, orDash(dt.SentVersion), ago(dt.SentAt, now), orDash(dt.AckedVersion), ago(dt.AckedAt, now))
			switch dt.State {
			case "NACKED":
				fmt.Fprintln(stdout, "    the client REJECTED the last response: it keeps what it had before, so names sent in it are not what it holds")
			case "STALE":
				fmt.Fprintln(stdout, "    the last response is not ACKed yet: the client may not hold what it was sent")
			}
			for _, n := range dt.Names {
				fmt.Fprintf(stdout, "    %s  %s\n", printable(n.Name), nameState(n, dt.State, now))
			}
		}
		if o.Host != "" {
			walk(stdout, s, o.Host, now)
		}
	}
	return nil
}

// nameState says whether the client has what it should have for n, a name
// of a type in state (SYNCED, STALE, NACKED).
func nameState(n dumpName, state string, now time.Time) string {
	if n.Sent && n.Version == "" {
		// The server keeps no version of a name its cache holds, only
		// that the client is behind it (xds.NameConfig).
		n.Version = "an older version"
	}
	switch {
	case n.Sent && state == "NACKED":
		return "sent " + n.Version + " (current " + n.Current + "), but the client REJECTED the type's last response: it may hold an older version"
	case n.Sent && state == "STALE":
		return "sent " + n.Version + " (current " + n.Current + "), not ACKed yet"
	case !n.Exists && n.Sent:
		return "sent " + n.Version + ", gone from the server (the client should have dropped it)"
	case !n.Exists:
		return "does not exist for this client"
	case !n.Sent:
		return "not sent; current " + n.Current + since(n.CurrentSince, now)
	case n.Version == n.Current:
		return "in sync at " + n.Version
	}
	return "BEHIND: holds " + n.Version + ", current " + n.Current + since(n.CurrentSince, now)
}

// walk follows host as a gRPC client resolves it: the listener named
// host, its route configuration, the virtual host and route that match
// host, the cluster, and the cluster's endpoints, each as the client was
// sent it (or, where the server no longer holds that version, as it is
// now, marked so).
func walk(w io.Writer, s dumpStream, host string, now time.Time) {
	fmt.Fprintf(w, "  walk of %s:\n", printable(host))
	lis := &listenerv3.Listener{}
	ln, ok := pick(s, "lds", host, lis)
	if !ok {
		fmt.Fprintf(w, "    listener %s: the client has not subscribed to it (a gRPC client dials xds:///%s)\n", printable(host), printable(host))
		return
	}
	fmt.Fprintf(w, "    listener %s  %s\n", printable(host), nameState(ln.n, s.Types["lds"].State, now)+ln.note)
	hcm := &hcmv3.HttpConnectionManager{}
	if err := lis.GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
		fmt.Fprintln(w, "    not an api_listener: no route to walk (an Envoy client's listeners are by port)")
		return
	}
	rc := hcm.GetRouteConfig()
	if rc == nil {
		rc = &routev3.RouteConfiguration{}
		rn, ok := pick(s, "rds", hcm.GetRds().GetRouteConfigName(), rc)
		if !ok {
			fmt.Fprintf(w, "    route %s: not held by the client\n", printable(hcm.GetRds().GetRouteConfigName()))
			return
		}
		fmt.Fprintf(w, "    route %s  %s\n", printable(rc.GetName()), nameState(rn.n, s.Types["rds"].State, now)+rn.note)
	}
	hostOnly := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostOnly = h
	}
	var cluster string
	for _, vh := range rc.GetVirtualHosts() {
		if !slices.Contains(vh.GetDomains(), host) && !slices.Contains(vh.GetDomains(), hostOnly) && !slices.Contains(vh.GetDomains(), "*") {
			continue
		}
		// Switchboard's routes today are one "/" route per virtual host.
		if rs := vh.GetRoutes(); len(rs) > 0 {
			cluster = rs[0].GetRoute().GetCluster()
			if wc := rs[0].GetRoute().GetWeightedClusters().GetClusters(); cluster == "" && len(wc) > 0 {
				cluster = wc[0].GetName()
			}
		}
		fmt.Fprintf(w, "      virtual host %s -> cluster %s\n", printable(vh.GetName()), printable(cluster))
		break
	}
	if cluster == "" {
		fmt.Fprintln(w, "      no virtual host matches: calls fail with UNAVAILABLE")
		return
	}
	cn, ok := pick(s, "cds", cluster, nil)
	if !ok {
		fmt.Fprintf(w, "    cluster %s: not held by the client\n", printable(cluster))
		return
	}
	fmt.Fprintf(w, "    cluster %s  %s\n", printable(cluster), nameState(cn.n, s.Types["cds"].State, now)+cn.note)
	cla := &endpointv3.ClusterLoadAssignment{}
	en, ok := pick(s, "eds", cluster, cla)
	if !ok {
		fmt.Fprintf(w, "    endpoints of %s: not held by the client\n", printable(cluster))
		return
	}
	fmt.Fprintf(w, "    endpoints  %s\n", nameState(en.n, s.Types["eds"].State, now)+en.note)
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			a := lb.GetEndpoint().GetAddress().GetSocketAddress()
			fmt.Fprintf(w, "      %s  %s  zone %q priority %d\n", net.JoinHostPort(a.GetAddress(), fmt.Sprint(a.GetPortValue())), lb.GetHealthStatus(), loc.GetLocality().GetZone(), loc.GetPriority())
		}
	}
}

// picked is one name of a walk, with a note when what is shown is not
// what the client was sent.
type picked struct {
	n    dumpName
	note string
}

// pick finds name among s's names of type t and decodes what the client
// holds into m (nil: do not decode).
func pick(s dumpStream, t, name string, m proto.Message) (picked, bool) {
	for _, n := range s.Types[t].Names {
		if n.Name != name {
			continue
		}
		p := picked{n: n}
		raw := n.Resource
		if raw == nil && n.CurrentResource != nil {
			raw, p.note = n.CurrentResource, " (shown: the current version; the server no longer holds the one sent)"
		}
		if m != nil && raw != nil {
			var a anypb.Any
			if err := protojson.Unmarshal(raw, &a); err != nil || a.UnmarshalTo(m) != nil {
				p.note += " (could not decode it)"
			}
		}
		return p, true
	}
	return picked{}, false
}

// fetchDebug GETs path from a --debug-address, reading at most limit
// bytes: status and explain read the debug views this way.
func fetchDebug(ctx context.Context, addr, path string, limit int64) ([]byte, int, error) {
	u := "http://" + addr + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%w (is it a switchboard's --debug-address?)", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s: %w", u, err)
	}
	if int64(len(body)) > limit {
		return nil, 0, fmt.Errorf("%s answered more than %d bytes (maxDebugClientsBytes), more than any switchboard's debug view; is it a switchboard's --debug-address?", u, limit)
	}
	return body, resp.StatusCode, nil
}

// ago is " (D ago)" for a time, "" for none.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " (" + now.Sub(t).Round(time.Millisecond).String() + " ago)"
}

// since is ", since D ago" for a change time, "" for none.
func since(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return ", changed " + now.Sub(t).Round(time.Millisecond).String() + " ago"
}
