package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchboard-xds/switchboard/xds"
)

// typeNames are the short type names of the debug views, in xds order.
var typeNames = [xds.NumTypes]string{"lds", "rds", "cds", "eds"}

// dumpName, dumpType and dumpStream are /debug/config_dump's JSON: what
// configDump writes and explain reads.
type dumpName struct {
	Name       string `json:"name"`
	Version    string `json:"version,omitempty"`
	Sent       bool   `json:"sent"`
	Subscribed bool   `json:"subscribed"`
	Exists     bool   `json:"exists"`
	// Current is the version the server holds for this client now; the
	// client lacks it when it differs from Version.
	Current      string          `json:"current,omitempty"`
	CurrentSince time.Time       `json:"current_since,omitzero"`
	Resource     json.RawMessage `json:"resource,omitempty"`
	// CurrentResource is the current version when the client was not sent
	// it.
	CurrentResource json.RawMessage `json:"current_resource,omitempty"`
}

type dumpType struct {
	State        string     `json:"state"`
	SentVersion  string     `json:"sent_version,omitempty"`
	SentAt       time.Time  `json:"sent_at,omitzero"`
	AckedVersion string     `json:"acked_version,omitempty"`
	AckedAt      time.Time  `json:"acked_at,omitzero"`
	Names        []dumpName `json:"names"`
}

type dumpStream struct {
	Stream     int64               `json:"stream"`
	NodeID     string              `json:"node_id"`
	Unanswered bool                `json:"unanswered,omitempty"`
	Types      map[string]dumpType `json:"types"`
}

// configDump serves /debug/config_dump?node=ID: what each stream of that
// node was last sent, per type, with the resources as protojson (Any
// types resolved); 404 when no connected client has the node id.
func configDump(ads *xds.Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		node := r.URL.Query().Get("node")
		if node == "" {
			http.Error(w, "config_dump needs ?node=ID", http.StatusBadRequest)
			return
		}
		configs := ads.ClientConfigs(r.Context(), node)
		if len(configs) == 0 {
			http.Error(w, fmt.Sprintf("no connected client has node id %q", node), http.StatusNotFound)
			return
		}
		out := make([]dumpStream, 0, len(configs))
		for _, cc := range configs {
			d := dumpStream{Stream: cc.Status.Stream, NodeID: cc.Status.NodeID, Unanswered: cc.Unanswered, Types: map[string]dumpType{}}
			for t, names := range cc.Types {
				ts := cc.Status.Types[t]
				if len(names) == 0 && ts.Responses == 0 {
					continue
				}
				td := dumpType{State: ts.State(), SentVersion: ts.SentVersion, SentAt: ts.SentAt, AckedVersion: ts.AckedVersion, AckedAt: ts.AckedAt, Names: []dumpName{}}
				for _, n := range names {
					e := dumpName{Name: n.Name, Version: n.Version, Sent: n.Sent, Subscribed: n.Subscribed, Exists: n.Exists, Current: n.Current, CurrentSince: n.CurrentSince}
					e.Resource, e.CurrentResource = resourceJSON(n.Resource), resourceJSON(n.CurrentResource)
					td.Names = append(td.Names, e)
				}
				d.Types[typeNames[t]] = td
			}
			out = append(out, d)
		}
		writeJSON(w, out)
	}
}

// resourceJSON is a resource as config_dump shows it (protojson, Any types
// resolved); nil for none.
func resourceJSON(a *anypb.Any) json.RawMessage {
	if a == nil {
		return nil
	}
	b, err := protojson.Marshal(a)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}

// debugQueryTimeout bounds a debug request that asks the streams.
const debugQueryTimeout = 5 * time.Second
