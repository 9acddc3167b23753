package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/switchboard-xds/switchboard/xds"
)

// typeNames are the short type names of the debug views, in xds order.
var typeNames = [xds.NumTypes]string{"lds", "rds", "cds", "eds"}

// configDump serves /debug/config_dump?node=ID: what each stream of that
// node was last sent, per type, with the resources as protojson (Any
// types resolved); 404 when no connected client has the node id.
func configDump(ads *xds.Server) http.HandlerFunc {
	type name struct {
		Name       string          `json:"name"`
		Version    string          `json:"version,omitempty"`
		Sent       bool            `json:"sent"`
		Subscribed bool            `json:"subscribed"`
		Exists     bool            `json:"exists"`
		Resource   json.RawMessage `json:"resource,omitempty"`
	}
	type typeDump struct {
		State        string `json:"state"`
		SentVersion  string `json:"sent_version,omitempty"`
		AckedVersion string `json:"acked_version,omitempty"`
		Names        []name `json:"names"`
	}
	type dump struct {
		Stream     int64               `json:"stream"`
		NodeID     string              `json:"node_id"`
		Unanswered bool                `json:"unanswered,omitempty"`
		Types      map[string]typeDump `json:"types"`
	}
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
		out := make([]dump, 0, len(configs))
		for _, cc := range configs {
			d := dump{Stream: cc.Status.Stream, NodeID: cc.Status.NodeID, Unanswered: cc.Unanswered, Types: map[string]typeDump{}}
			for t, names := range cc.Types {
				ts := cc.Status.Types[t]
				if len(names) == 0 && ts.Responses == 0 {
					continue
				}
				td := typeDump{State: ts.State(), SentVersion: ts.SentVersion, AckedVersion: ts.AckedVersion, Names: []name{}}
				for _, n := range names {
					e := name{Name: n.Name, Version: n.Version, Sent: n.Sent, Subscribed: n.Subscribed, Exists: n.Exists}
					if n.Resource != nil {
						b, err := protojson.Marshal(n.Resource)
						if err != nil {
							b, _ = json.Marshal(map[string]string{"error": err.Error()})
						}
						e.Resource = b
					}
					td.Names = append(td.Names, e)
				}
				d.Types[typeNames[t]] = td
			}
			out = append(out, d)
		}
		writeJSON(w, out)
	}
}

// debugQueryTimeout bounds a debug request that asks the streams.
const debugQueryTimeout = 5 * time.Second
