package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/switchboard-xds/switchboard/model"
)

// routeLine is one Service parent of one mesh route, as status --routes
// prints it.
type routeLine struct {
	Route            string `json:"route"`
	Generation       int64  `json:"generation"`
	Parent           string `json:"parent"`
	Accepted         string `json:"accepted"`
	ResolvedRefs     string `json:"resolved_refs"`
	PartiallyInvalid string `json:"partially_invalid,omitempty"`
	Message          string `json:"message,omitempty"`
}

// statusRoutes fetches /debug/routes from the first --debug address (every
// replica computes the same statuses) and prints one line per route and
// Service parent: the conditions the status writer puts in
// status.parents, and in standalone mode the only place they show.
func statusRoutes(ctx context.Context, o statusOptions, stdout io.Writer) error {
	limit := o.maxBytes
	if limit <= 0 {
		limit = maxDebugClientsBytes
	}
	addr := splitAddresses(o.Debug)[0]
	body, code, err := fetchDebug(ctx, addr, "/debug/routes", limit)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("status: GET %s/debug/routes: HTTP %d", addr, code)
	}
	var routes []model.RouteStatus
	if err := json.Unmarshal(body, &routes); err != nil {
		return fmt.Errorf("status: decoding %s/debug/routes: %w", addr, err)
	}
	lines := []routeLine{}
	for _, r := range routes {
		for _, p := range r.Parents {
			l := routeLine{
				Route:        printable(r.Route.String()),
				Generation:   r.Generation,
				Parent:       printable(parentLabel(p.Parent)),
				Accepted:     condition(p.Accepted),
				ResolvedRefs: condition(p.ResolvedRefs),
			}
			for _, c := range []model.Condition{p.Accepted, p.ResolvedRefs} {
				if !c.Status && l.Message == "" {
					l.Message = printable(c.Message)
				}
			}
			if pi := p.PartiallyInvalid; pi != nil {
				l.PartiallyInvalid = condition(*pi)
				if l.Message == "" {
					l.Message = printable(pi.Message)
				}
			}
			lines = append(lines, l)
		}
	}
	if o.Output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(lines)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tGENERATION\tPARENT\tACCEPTED\tRESOLVEDREFS\tPARTIALLYINVALID\tMESSAGE")
	for _, l := range lines {
		cols := []string{
			l.Route, strconv.FormatInt(l.Generation, 10), l.Parent,
			l.Accepted, l.ResolvedRefs, orDash(l.PartiallyInvalid), orDash(l.Message),
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

// condition prints c as "True" or "False (Reason)".
func condition(c model.Condition) string {
	if c.Status {
		return "True"
	}
	return "False (" + printable(c.Reason) + ")"
}

// parentLabel is "Service ns/name", with ":port" or "/section".
func parentLabel(p model.ParentRef) string {
	s := p.Kind + " " + p.Namespace + "/" + p.Name
	if p.Port != 0 {
		s += ":" + strconv.Itoa(int(p.Port))
	}
	if p.SectionName != "" {
		s += "/" + p.SectionName
	}
	return s
}
