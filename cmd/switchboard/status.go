package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// maxDebugClientsBytes bounds what status reads from /debug/clients: a
// client's entry is about 1.5 KiB (node id and user agent cut to
// --xds-max-node-id-bytes, a NACK detail to --xds-max-nack-detail-bytes),
// so 128 MiB is some 80,000 clients, more than one replica serves
// (--xds-max-connections 4096); an endpoint that answers more is not a
// switchboard, or not one to print.
const maxDebugClientsBytes = 128 << 20

// statusOptions are the flags of "switchboard status".
type statusOptions struct {
	Debug  string
	Output string
	// Routes prints the mesh routes' status conditions instead of the
	// clients.
	Routes bool
	// now is the clock for ages; tests set it.
	now func() time.Time
	// maxBytes bounds the answer read; 0 is maxDebugClientsBytes. Tests
	// set it.
	maxBytes int64
}

// newStatusCommand is "switchboard status".
func newStatusCommand() *cobra.Command {
	o := statusOptions{now: time.Now}
	cmd := &cobra.Command{
		Use:   "status [flags]",
		Short: "Print every xDS client's sync state (from --debug-address)",
		Long: "Print one line per connected xDS client, read from a running switchboard's /debug/clients:\n" +
			"node id, class, zone and, per type, SYNCED, STALE (sent, not ACKed), NACKED or NOT SENT with its age.",
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return usageErr(err)
			}
			return status(c.Context(), o, c.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.Debug, "debug", "127.0.0.1:9091", "`address` of the switchboard's --debug-address; a comma-separated list asks every replica (behind a Service: one per pod) and adds a REPLICA column")
	cmd.Flags().StringVar(&o.Output, "output", "text", "output format: text or json")
	cmd.Flags().BoolVar(&o.Routes, "routes", false, "print the mesh routes' status conditions (Accepted, ResolvedRefs, PartiallyInvalid per Service parent) instead of the clients")
	completeValues(cmd, map[string][]string{"output": {"text", "json"}})
	return cmd
}

// check says what is wrong with the flags.
func (o statusOptions) check() error {
	if o.Output != "text" && o.Output != "json" {
		return fmt.Errorf("status: --output %q: want text or json", o.Output)
	}
	if len(splitAddresses(o.Debug)) == 0 {
		return errors.New("status: --debug names no address")
	}
	return nil
}

// debugClient is the part of a /debug/clients entry that status reads.
type debugClient struct {
	Stream   int64                    `json:"stream"`
	NodeID   string                   `json:"node_id"`
	Class    string                   `json:"class"`
	Zone     string                   `json:"zone"`
	Protocol string                   `json:"protocol"`
	Types    map[string]debugTypeInfo `json:"types"`
}

type debugTypeInfo struct {
	State      string    `json:"state"`
	SentAt     time.Time `json:"sent_at"`
	AckedAt    time.Time `json:"acked_at"`
	LastNackAt time.Time `json:"last_nack_at"`
	LastNack   string    `json:"last_nack"`
}

// clientLine is one client as status prints it.
type clientLine struct {
	// Replica is the --debug address the client was read from, when
	// status asked several.
	Replica string               `json:"replica,omitempty"`
	NodeID  string               `json:"node_id"`
	Stream  int64                `json:"stream"`
	Class   string               `json:"class"`
	Zone    string               `json:"zone"`
	Types   map[string]typeState `json:"types"`
}

type typeState struct {
	// State is SYNCED, STALE, NACKED or NOT SENT.
	State string `json:"state"`
	// Age is how long the state has held: since the ACK (SYNCED), the
	// response (STALE) or the NACK (NACKED).
	Age      float64 `json:"age_seconds,omitempty"`
	LastNack string  `json:"last_nack,omitempty"`
}

// status fetches /debug/clients and prints it.
func status(ctx context.Context, o statusOptions, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if o.Routes {
		return statusRoutes(ctx, o, stdout)
	}
	limit := o.maxBytes
	if limit <= 0 {
		limit = maxDebugClientsBytes
	}
	addrs := splitAddresses(o.Debug)
	var lines []clientLine
	for _, addr := range addrs {
		body, code, err := fetchDebug(ctx, addr, "/debug/clients", limit)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		if code != http.StatusOK {
			return fmt.Errorf("status: GET %s/debug/clients: HTTP %d", addr, code)
		}
		var clients []debugClient
		if err := json.Unmarshal(body, &clients); err != nil {
			return fmt.Errorf("status: decoding %s/debug/clients: %w", addr, err)
		}
		for _, c := range clients {
			l := lineOf(c, o.now())
			if len(addrs) > 1 {
				l.Replica = addr
			}
			lines = append(lines, l)
		}
	}
	if lines == nil {
		lines = []clientLine{}
	}
	if o.Output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(lines)
	}
	return printStatus(stdout, lines, len(addrs) > 1)
}

// lineOf is what status prints of c. Every string in it comes from a
// client (node id, zone, NACK detail) or from whatever answered at
// --debug, so each is made printable: a terminal escape in a node id is
// shown, not obeyed.
func lineOf(c debugClient, now time.Time) clientLine {
	l := clientLine{NodeID: printable(c.NodeID), Stream: c.Stream, Class: printable(c.Class), Zone: printable(c.Zone), Types: map[string]typeState{}}
	for _, t := range typeNames {
		ti, ok := c.Types[t]
		s := typeState{State: "NOT SENT"}
		var since time.Time
		switch {
		case !ok || ti.State == "NOT_SENT" || ti.State == "":
		case ti.State == "SYNCED":
			s.State, since = "SYNCED", ti.AckedAt
		case ti.State == "NACKED":
			s.State, since, s.LastNack = "NACKED", ti.LastNackAt, printable(ti.LastNack)
		default:
			s.State, since = "STALE", ti.SentAt
		}
		if !since.IsZero() {
			s.Age = max(now.Sub(since).Seconds(), 0)
		}
		l.Types[t] = s
	}
	return l
}

func printStatus(w io.Writer, lines []clientLine, replicas bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "NODE\tCLASS\tZONE\t" + strings.ToUpper(strings.Join(typeNames[:], "\t"))
	if replicas {
		head = "REPLICA\t" + head
	}
	fmt.Fprintln(tw, head)
	for _, l := range lines {
		cols := []string{orDash(l.NodeID), orDash(l.Class), orDash(l.Zone)}
		if replicas {
			cols = append([]string{l.Replica}, cols...)
		}
		for _, t := range typeNames {
			s := l.Types[t]
			cell := s.State
			if s.State != "NOT SENT" {
				cell += " (" + age(s.Age) + ")"
			}
			cols = append(cols, cell)
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

// printable returns s if every rune of it is printable (unicode.IsPrint:
// letters, marks, numbers, punctuation, symbols and the ASCII space), else
// s quoted by strconv.Quote, escapes and all: control characters (ESC,
// tab, newline, the C1 controls), invalid UTF-8 and other non-printing
// runes come out as \x1b, \t, \u009b... The quotes say the value was
// escaped, so a value that merely looks like an escape is told apart.
func printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// splitAddresses is a comma-separated --debug list, blanks dropped.
func splitAddresses(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age formats seconds the way kubectl does: 45s, 3m12s, 2h5m.
func age(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
}
