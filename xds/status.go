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
	// Class is the client class (model.ClientClass), "" for none.
	Class       string
	Zone        string
	ConnectedAt time.Time
	Types       [numTypes]TypeStatus
}

// TypeStatus is one client's state for one resource type.
type TypeStatus struct {
	Subscribed   int       `json:"subscribed"`
	Wildcard     bool      `json:"wildcard,omitempty"`
	SentVersion  string    `json:"sent_version,omitempty"`
	SentAt       time.Time `json:"sent_at,omitzero"`
	AckedVersion string    `json:"acked_version,omitempty"`
	AckedAt      time.Time `json:"acked_at,omitzero"`
	Responses    int       `json:"responses"`
	Nacks        int       `json:"nacks"`
	// LastNack is the error detail of the last NACK, cut to
	// Limits.MaxNackDetailBytes.
	LastNack string `json:"last_nack,omitempty"`
	// LastNackBytes is the length of the NACK's message when LastNack is
	// cut short, else 0.
	LastNackBytes int       `json:"last_nack_bytes,omitempty"`
	LastNackAt    time.Time `json:"last_nack_at,omitzero"`
}

// Sync states of one type for one client (TypeStatus.State).
const (
	// StateSynced: the client ACKed the latest response.
	StateSynced = "SYNCED"
	// StateStale: the latest response is sent and not answered yet.
	StateStale = "STALE"
	// StateNacked: the client rejected the latest response.
	StateNacked = "NACKED"
	// StateNotSent: nothing was sent for the type yet.
	StateNotSent = "NOT_SENT"
)

// State says where the client stands with the latest response of the
// type: one of the State constants.
func (s TypeStatus) State() string {
	switch {
	case s.Responses == 0:
		return StateNotSent
	case s.AckedVersion == s.SentVersion && !s.AckedAt.Before(s.SentAt):
		return StateSynced
	case s.LastNackAt.After(s.SentAt) || s.LastNackAt.Equal(s.SentAt):
		return StateNacked
	}
	return StateStale
}

// MarshalJSON adds the state and, when the latest response is not ACKed,
// its staleness in seconds (now - SentAt).
func (s TypeStatus) MarshalJSON() ([]byte, error) {
	type plain TypeStatus
	out := struct {
		plain
		State     string  `json:"state"`
		Staleness float64 `json:"staleness_seconds,omitempty"`
	}{plain: plain(s), State: s.State()}
	if st := out.State; st == StateStale || st == StateNacked {
		out.Staleness = time.Since(s.SentAt).Seconds()
	}
	return json.Marshal(out)
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
