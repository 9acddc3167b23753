package load

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Lines returns the grep-able comparison lines, one per scenario, peer and
// metric, in the form (ratio = peer / Switchboard, higher is better
// for Switchboard; the floor gets over-floor = Switchboard / floor):
//
//	convergence p99 N=100 R=100: switchboard 4.1 ms, go-control-plane-linear 120 ms, ratio 29.3
//	convergence p99 N=100 R=100: switchboard 4.1 ms, floor 3.5 ms, over-floor 1.17
//
// and likewise "cpu per change" and "bytes per change". Scenarios without a
// Switchboard result get no lines.
func Lines(results []Result) []string {
	var out []string
	for _, group := range byScenario(results) {
		sb, ok := find(group, KindSwitchboard)
		if !ok {
			continue
		}
		metrics := []struct {
			name  string
			value func(Result) float64
			unit  func(float64) string
		}{
			{"convergence p99", func(r Result) float64 { return ms(r.P99()) }, func(v float64) string { return num(v) + " ms" }},
			{"cpu per change", func(r Result) float64 { return ms(r.CPUPerChange) }, func(v float64) string { return num(v) + " ms" }},
			{"bytes per change", Result.BytesPerChange, bytesText},
		}
		for _, m := range metrics {
			for _, r := range group {
				if r.Kind == KindSwitchboard {
					continue
				}
				a, b := m.value(sb), m.value(r)
				if r.Kind == KindFloor {
					out = append(out, fmt.Sprintf("%s %s: switchboard %s, floor %s, over-floor %s",
						m.name, sb.scenario(), m.unit(a), m.unit(b), ratio(a, b)))
					continue
				}
				out = append(out, fmt.Sprintf("%s %s: switchboard %s, %s %s, ratio %s",
					m.name, sb.scenario(), m.unit(a), r.Kind, m.unit(b), ratio(b, a)))
			}
		}
	}
	return out
}

// byScenario groups results by scenario, in order of first appearance, and
// each group in Kinds order.
func byScenario(results []Result) [][]Result {
	var keys []string
	groups := map[string][]Result{}
	for _, r := range results {
		k := r.scenario()
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([][]Result, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		slices.SortStableFunc(g, func(a, b Result) int { return slices.Index(Kinds, a.Kind) - slices.Index(Kinds, b.Kind) })
		out = append(out, g)
	}
	return out
}

func find(group []Result, k Kind) (Result, bool) {
	for _, r := range group {
		if r.Kind == k {
			return r, true
		}
	}
	return Result{}, false
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// num prints about three significant digits without exponents.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func ratio(a, b float64) string {
	if b == 0 {
		if a == 0 {
			return "1"
		}
		return "inf"
	}
	return num(a / b)
}

func bytesText(v float64) string {
	switch {
	case v >= 1e6:
		return num(v/1e6) + " MB"
	case v >= 1e3:
		return num(v/1e3) + " KB"
	default:
		return num(v) + " B"
	}
}

// Markdown renders the results as a report: how it was run, a table per
// scenario, the comparison lines and the targets next to what was
// reached. command is the command line that produced it.
func Markdown(results []Result, command, machine string) string {
	var b strings.Builder
	b.WriteString("# Switchboard load report\n\n")
	fmt.Fprintf(&b, "Command: `%s`\n\nMachine: %s\n\n", command, machine)
	b.WriteString("Read the figures as ratios: server and clients share the machine, and the clients' CPU competes with the server's. ")
	b.WriteString("Convergence is the time from the driver's change command to the ACK of the last affected client (it includes the peer's translation). ")
	b.WriteString("CPU is the server process's user+system time (/proc, 10 ms ticks) over the change phase divided by the changes. ")
	b.WriteString("Bytes are proto.Size of responses (down) and requests (up) over all clients. p99 is nearest-rank: with fewer than 100 changes it is the maximum.\n\n")
	for _, group := range byScenario(results) {
		fmt.Fprintf(&b, "## %s, %d endpoints per Service\n\n", group[0].scenario(), group[0].Endpoints)
		b.WriteString("| server | changes | initial sync | p50 | p99 | max | timeouts | CPU/change | apply p50 | down/change | up/change | pushes per affected client | heap/endpoint | heap/client | final mismatches |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, r := range group {
			fmt.Fprintf(&b, "| %s | %d | %s ms | %s ms | %s ms | %s ms | %d | %s ms | %s ms | %s | %s | %s | %s | %s | %d |\n",
				r.Kind, r.Changes, num(ms(r.Sync)), num(ms(r.P50())), num(ms(r.P99())), num(ms(r.Max())), r.Timeouts,
				num(ms(r.CPUPerChange)), num(ms(quantile(r.Apply, 0.5))), bytesText(r.BytesDownPerChange), bytesText(r.BytesUpPerChange),
				num(r.PushesPerAffected), bytesText(r.HeapPerEndpoint), bytesText(r.HeapPerClient), r.FinalMismatches)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Comparison lines\n\n```\n")
	for _, l := range Lines(results) {
		b.WriteString(l + "\n")
	}
	b.WriteString("```\n\n## Targets (issue 4)\n\n")
	b.WriteString(targets(results))
	return b.String()
}

// targets compares what was measured with the targets. A target
// whose size was not run says so rather than borrowing another size.
func targets(results []Result) string {
	var b strings.Builder
	b.WriteString("| target | measured | met |\n| --- | --- | --- |\n")
	row := func(target, measured string, met bool, ran bool) {
		verdict := "no"
		switch {
		case !ran:
			verdict = "not run at this size"
		case met:
			verdict = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", target, measured, verdict)
	}
	for _, n := range []struct {
		clients int
		limit   time.Duration
	}{{100, 25 * time.Millisecond}, {1000, 250 * time.Millisecond}} {
		sb, ok := pick(results, KindSwitchboard, n.clients, 1000)
		row(fmt.Sprintf("convergence p99 ≤ %s at N=%d, R=1000", n.limit, n.clients), measuredMs(sb, ok, Result.P99), ok && sb.P99() <= n.limit, ok)
	}
	for _, group := range byScenario(results) {
		sb, ok := find(group, KindSwitchboard)
		if !ok {
			continue
		}
		if lin, ok := find(group, KindLinear); ok {
			r := float64(lin.P99()) / math.Max(1, float64(sb.P99()))
			row("p99 ≥ 10× lower than go-control-plane LinearCache ("+sb.scenario()+")", num(r)+"×", r >= 10, true)
		}
		if fl, ok := find(group, KindFloor); ok {
			r := float64(sb.CPUPerChange) / math.Max(1, float64(fl.CPUPerChange))
			row("CPU per change ≤ 1.3× the floor ("+sb.scenario()+")", num(r)+"×", r <= 1.3, true)
		}
		row("heap ≤ 150 KB per connected client ("+sb.scenario()+")", bytesText(sb.HeapPerClient), sb.HeapPerClient <= 150e3, true)
		row("heap ≤ 100 B per endpoint ("+sb.scenario()+")", bytesText(sb.HeapPerEndpoint), sb.HeapPerEndpoint <= 100, true)
	}
	b.WriteString("\nTranslation targets (100k endpoints ≤ 100 ms, one-slice update ≤ 50 µs) are Go benchmarks: see the `go test -bench` output of the same run.\n")
	return b.String()
}

func pick(results []Result, k Kind, clients, services int) (Result, bool) {
	for _, r := range results {
		if r.Kind == k && r.Clients == clients && r.Services == services && r.PerClient == 0 {
			return r, true
		}
	}
	return Result{}, false
}

func measuredMs(r Result, ok bool, f func(Result) time.Duration) string {
	if !ok {
		return "–"
	}
	return num(ms(f(r))) + " ms"
}
