package observability

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Vars are the values that Expand gives Grafana's variables.
type Vars struct {
	// Job and Instance are regular expressions, as the dashboard's "All"
	// (".+") or a selected value.
	Job, Instance string
	// RateInterval replaces $__rate_interval, e.g. "1m".
	RateInterval string
}

// Expand replaces the dashboard's variables in expr, making it a query
// Prometheus can run as Grafana would send it.
func Expand(expr string, v Vars) string {
	return strings.NewReplacer(
		"$__rate_interval", v.RateInterval,
		"$job", v.Job,
		"$instance", v.Instance,
	).Replace(expr)
}

// promql parses with Prometheus's own parser and its default options, as
// Prometheus 2.x and 3.x run these queries.
var promql = parser.NewParser(parser.Options{})

// MetricNames parses expr as PromQL and returns the metric names its
// selectors read, sorted and without repeats. A selector without a metric
// name (or with a regular expression on __name__) is an error: every query
// here must name what it reads, so that a test can check the name exists.
func MetricNames(expr string) ([]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("%q: selector %s names no metric", expr, vs)
			return nil
		}
		names = append(names, name)
		return nil
	})
	if bad != nil {
		return nil, bad
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
