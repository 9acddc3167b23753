package xds

import (
	"encoding/json"
	"time"
)

// ClientStatus is what the server knows of one connected client: who it is
// and, per resource type, what it subscribed to, what it was sent, what it
// accepted and what it rejected. It is a copy; changing it changes nothing.
type ClientStatus struct {
	Stream int64
	// Protocol is "sotw" (state of the world) or "delta".
	Protocol string
	NodeID   string
	// NodeIDBytes is the length of the node id the client sent when NodeID
	// is cut short (Limits.MaxNodeIDBytes), else 0.
	NodeIDBytes int
	UserAgent   string
	// Class is the client class (translator.ClientClass), "" for none.
	Class       string
	Zone        string
	ConnectedAt time.Time
	Types       [numTypes]TypeStatus
}

// TypeStatus is one client's state for one resource type.
type TypeStatus struct {
	Subscribed   int    `json:"subscribed"`
	Wildcard     bool   `json:"wildcard,omitempty"`
	SentVersion  string `json:"sent_version,omitempty"`
	AckedVersion string `json:"acked_version,omitempty"`
	Responses    int    `json:"responses"`
	Nacks        int    `json:"nacks"`
	LastNack     string `json:"last_nack,omitempty"`
	// LastNackBytes is the length of the NACK's message when LastNack is
	// cut short (Limits.MaxNackDetailBytes), else 0.
	LastNackBytes int       `json:"last_nack_bytes,omitempty"`
	LastNackAt    time.Time `json:"last_nack_at,omitzero"`
}

// MarshalJSON names the types ("lds", "rds", "cds", "eds") and leaves out
// the ones the client never asked for.
func (c ClientStatus) MarshalJSON() ([]byte, error) {
	types := map[string]TypeStatus{}
	for t, s := range c.Types {
		if s != (TypeStatus{}) {
			types[typeIndex(t).String()] = s
		}
	}
	return json.Marshal(struct {
		Stream      int64                 `json:"stream"`
		Protocol    string                `json:"protocol"`
		NodeID      string                `json:"node_id"`
		NodeIDBytes int                   `json:"node_id_bytes,omitempty"`
		UserAgent   string                `json:"user_agent"`
		Class       string                `json:"class,omitempty"`
		Zone        string                `json:"zone,omitempty"`
		ConnectedAt time.Time             `json:"connected_at"`
		Types       map[string]TypeStatus `json:"types"`
	}{c.Stream, c.Protocol, c.NodeID, c.NodeIDBytes, c.UserAgent, c.Class, c.Zone, c.ConnectedAt, types})
}
