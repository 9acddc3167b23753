package loadtest

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

var chartColors = map[Kind]string{
	KindSwitchboard: "#1f77b4",
	KindLinear:      "#d62728",
	KindSnapshot:    "#ff7f0e",
	KindFloor:       "#2ca02c",
}

// ChartSVG draws convergence p99 against N (clients), one line per Kind, on
// a log scale (the peers differ by orders of magnitude). Only results with
// single changes that subscribe every client to every Service (PerClient 0)
// with R == services are drawn; N values are evenly spaced.
func ChartSVG(results []Result, services int) string {
	const w, h, left, right, top, bottom = 640.0, 400.0, 70.0, 190.0, 40.0, 50.0
	var ns []int
	lo, hi := math.Inf(1), math.Inf(-1)
	series := map[chartLine][][2]float64{} // N, p99 ms
	for _, r := range results {
		if r.Services != services || r.PerClient != 0 || r.Changes == 0 {
			continue
		}
		v := math.Max(ms(r.P99()), 0.01)
		l := chartLine{r.Kind, r.Delta}
		series[l] = append(series[l], [2]float64{float64(r.Clients), v})
		if !slices.Contains(ns, r.Clients) {
			ns = append(ns, r.Clients)
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	slices.Sort(ns)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="14">Convergence p99 vs clients (R=%d Services, log scale)</text>`+"\n", left, services)
	if len(ns) == 0 {
		b.WriteString(`<text x="70" y="200">no results</text></svg>` + "\n")
		return b.String()
	}
	decLo, decHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if decHi == decLo {
		decHi++
	}
	pw, ph := w-left-right, h-top-bottom
	y := func(v float64) float64 { return top + ph - (math.Log10(v)-decLo)/(decHi-decLo)*ph }
	x := func(n float64) float64 {
		i := slices.Index(ns, int(n))
		if len(ns) == 1 {
			return left + pw/2
		}
		return left + float64(i)/float64(len(ns)-1)*pw
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, top, left, top+ph)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, top+ph, left+pw, top+ph)
	for d := decLo; d <= decHi; d++ {
		v := math.Pow(10, d)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), left+pw, y(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s ms</text>`+"\n", left-6, y(v)+4, num(v))
	}
	for _, n := range ns {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">N=%d</text>`+"\n", x(float64(n)), top+ph+18, n)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">clients (N)</text>`+"\n", left+pw/2, h-8)
	row := 0
	for _, l := range chartLines(Kinds) {
		pts := series[l]
		if len(pts) == 0 {
			continue
		}
		k, label, dash := l.kind, string(l.kind), ""
		if l.delta {
			label, dash = label+" (delta)", ` stroke-dasharray="6,3"`
		}
		slices.SortFunc(pts, func(a, b [2]float64) int { return int(a[0] - b[0]) })
		var path []string
		for _, p := range pts {
			path = append(path, fmt.Sprintf("%.1f,%.1f", x(p[0]), y(p[1])))
		}
		c := chartColors[k]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", c, dash, strings.Join(path, " "))
		for _, p := range pts {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s N=%.0f: %s ms</title></circle>`+"\n",
				x(p[0]), y(p[1]), c, html.EscapeString(label), p[0], num(p[1]))
		}
		ly := top + 10 + float64(row)*20
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", left+pw+15, ly, left+pw+35, ly, c, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", left+pw+40, ly+4, html.EscapeString(label))
		row++
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// chartLine is one line of the chart: a Kind over one protocol.
type chartLine struct {
	kind  Kind
	delta bool
}

// chartLines lists the chart's lines in legend order: every Kind over SotW,
// then every Kind over delta.
func chartLines(kinds []Kind) []chartLine {
	var out []chartLine
	for _, delta := range []bool{false, true} {
		for _, k := range kinds {
			out = append(out, chartLine{k, delta})
		}
	}
	return out
}
