package loadtest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Lines returns the grep-able comparison lines, one per scenario, peer and
// metric, in the issue's form (ratio = peer / Switchboard, higher is better
// for Switchboard; the floor gets over-floor = Switchboard / floor):
//
//	convergence p99 N=100 R=100: switchboard 4.1 ms, go-control-plane-linear 120 ms, ratio 29.3
//	convergence p99 N=100 R=100: switchboard 4.1 ms, floor 3.5 ms, over-floor 1.17
//
// and likewise "cpu per change" and "bytes per change"; then the churn lines
// (see churnLines). Scenarios without a Switchboard result get no lines, and
// without single changes no single-change lines.
func Lines(results []Result) []string {
	var out []string
	for _, group := range byScenario(results) {
		sb, ok := find(group, KindSwitchboard)
		if !ok {
			continue
		}
		if sb.Changes == 0 {
			out = append(out, churnLines(group, sb)...)
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
		out = append(out, churnLines(group, sb)...)
	}
	return append(out, envoyLines(results)...)
}

// churnLines are the lines of the churn phases of one scenario, per rate
// that Switchboard ran:
//
//	churn 100/s N=100 R=100: switchboard p99 staleness 12 ms, go-control-plane-linear 340 ms, ratio 28.3
//	churn 100/s N=100 R=100: switchboard p99 staleness 12 ms, floor 10 ms, over-floor 1.20
//	churn cpu 100/s N=100 R=100: switchboard 0.310 cores, go-control-plane-linear 0.900 cores, ratio 2.90
//	churn pushes 100/s N=100 R=100: switchboard 95.2 per client per s, go-control-plane-linear 99.0 per client per s, ratio 1.04
//	final state N=100 R=100 rate=100/s: switchboard 0 mismatches, go-control-plane-linear 0 mismatches
//
// A staleness that is only a lower bound (the p99 change had not converged
// when the drain ended) is written ">X ms", and a ratio built on one ">" or
// "<". Peers that skipped the phase get no lines; a final state of a Kind
// that fell behind says how many changes had not converged.
func churnLines(group []Result, sb Result) []string {
	var out []string
	for j, sc := range sb.Churn {
		if sc.Skipped != "" {
			continue
		}
		scen := fmt.Sprintf("%d/s %s", sc.Rate, sb.scenario())
		a, aLow := sc.StalenessQuantile(0.99)
		final := []string{finalText(KindSwitchboard, sc)}
		var cpu, pushes []string
		for _, r := range group {
			if r.Kind == KindSwitchboard || j >= len(r.Churn) || r.Churn[j].Skipped != "" {
				continue
			}
			pc := r.Churn[j]
			b, bLow := pc.StalenessQuantile(0.99)
			if r.Kind == KindFloor {
				out = append(out, fmt.Sprintf("churn %s: switchboard p99 staleness %s, floor %s, over-floor %s",
					scen, boundMs(a, aLow), boundMs(b, bLow), boundRatio(ms(a), ms(b), aLow, bLow)))
			} else {
				out = append(out, fmt.Sprintf("churn %s: switchboard p99 staleness %s, %s %s, ratio %s",
					scen, boundMs(a, aLow), r.Kind, boundMs(b, bLow), boundRatio(ms(b), ms(a), bLow, aLow)))
			}
			cpu = append(cpu, peerFigure(r.Kind, sc.CPUCores, pc.CPUCores, num(pc.CPUCores)+" cores"))
			pushes = append(pushes, peerFigure(r.Kind, sc.PushesPerClientPerSec, pc.PushesPerClientPerSec, num(pc.PushesPerClientPerSec)+" per client per s"))
			final = append(final, finalText(r.Kind, pc))
		}
		for _, l := range cpu {
			out = append(out, fmt.Sprintf("churn cpu %s: switchboard %s cores, %s", scen, num(sc.CPUCores), l))
		}
		for _, l := range pushes {
			out = append(out, fmt.Sprintf("churn pushes %s: switchboard %s per client per s, %s", scen, num(sc.PushesPerClientPerSec), l))
		}
		out = append(out, fmt.Sprintf("final state %s rate=%d/s: %s", sb.scenario(), sc.Rate, strings.Join(final, ", ")))
	}
	return out
}

// peerFigure is "KIND FIGURE, ratio R" (peer ÷ Switchboard), or for the
// floor "floor FIGURE, over-floor R" (Switchboard ÷ floor).
func peerFigure(k Kind, sb, peer float64, figure string) string {
	if k == KindFloor {
		return fmt.Sprintf("floor %s, over-floor %s", figure, ratio(sb, peer))
	}
	return fmt.Sprintf("%s %s, ratio %s", k, figure, ratio(peer, sb))
}

func finalText(k Kind, c ChurnResult) string {
	s := fmt.Sprintf("%s %d mismatches", k, c.FinalMismatches)
	if c.Behind() {
		s += fmt.Sprintf(" (behind: %d changes not converged)", len(c.NotConverged))
	}
	return s
}

// boundMs writes a staleness, ">X ms" when it is a lower bound.
func boundMs(d time.Duration, lower bool) string {
	if lower {
		return ">" + num(ms(d)) + " ms"
	}
	return num(ms(d)) + " ms"
}

// boundRatio is a ÷ b where either may be a lower bound.
func boundRatio(a, b float64, aLow, bLow bool) string {
	switch {
	case aLow && bLow:
		return "?"
	case aLow:
		return ">" + ratio(a, b)
	case bLow:
		return "<" + ratio(a, b)
	}
	return ratio(a, b)
}

// CheckFinalState returns an error when a churn phase ended with clients
// whose state differs from the world's: always for Switchboard, and for a
// peer when every change had converged (a wrong state, not a late one; a
// peer that fell behind is marked in the report instead).
func CheckFinalState(results []Result) error {
	var errs []error
	for _, r := range results {
		for _, c := range r.Churn {
			if c.Skipped != "" || c.FinalMismatches == 0 || (r.Kind != KindSwitchboard && c.Behind()) {
				continue
			}
			errs = append(errs, fmt.Errorf("final state %s rate=%d/s: %s has %d resources that differ from the world (%d changes not converged)",
				r.scenario(), c.Rate, r.Kind, c.FinalMismatches, len(c.NotConverged)))
		}
	}
	return errors.Join(errs...)
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
// scenario, the comparison lines and the issue's targets next to what was
// reached. command is the command line that produced it.
func Markdown(results []Result, command, machine string) string {
	var b strings.Builder
	b.WriteString("# Switchboard load report\n\n")
	fmt.Fprintf(&b, "Command: `%s`\n\nMachine: %s\n\n", command, machine)
	b.WriteString("Read the figures as ratios: server and clients share the machine, and the clients' CPU competes with the server's. ")
	b.WriteString("Convergence is the time from the driver's change command to the ACK of the last affected client (it includes the peer's translation). ")
	b.WriteString("CPU is the server process's user+system time (/proc, 10 ms ticks) over the change phase divided by the changes. ")
	b.WriteString("Bytes are proto.Size of responses (down) and requests (up) over all clients. p99 is nearest-rank: with fewer than 100 changes it is the maximum.\n\n")
	b.WriteString("Churn issues changes at a fixed rate to Services drawn from a seeded Zipf distribution (the same sequence for every server) without waiting for them (open loop). ")
	b.WriteString("The staleness of a change is the time from its issue until the last client subscribed to its Service has ACKed that Service at least as new; ")
	b.WriteString("a change not converged when the drain ends counts as staler than all others, and a quantile that falls on one is a lower bound (\">\"). ")
	b.WriteString("CPU (cores), pushes (responses of any type) per client per second and bytes per second are taken over the issue window. ")
	b.WriteString("Issue lag is the driver's own delay behind the schedule. Final mismatches compare every client's last cluster and assignment of every subscribed Service with the world after the drain.\n\n")
	if slices.ContainsFunc(results, func(r Result) bool { return r.Sidecars }) {
		b.WriteString(envoyServed)
	}
	for _, group := range byScenario(results) {
		fmt.Fprintf(&b, "## %s, %d endpoints per Service\n\n", group[0].scenario(), group[0].Endpoints)
		if group[0].Changes == 0 {
			b.WriteString(churnTable(group))
			continue
		}
		b.WriteString("| server | changes | initial sync | p50 | p99 | max | timeouts | CPU/change | apply p50 | down/change | up/change | pushes per affected client | heap/endpoint | heap/client | final mismatches |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, r := range group {
			fmt.Fprintf(&b, "| %s | %d | %s ms | %s ms | %s ms | %s ms | %d | %s ms | %s ms | %s | %s | %s | %s | %s | %d |\n",
				r.Kind, r.Changes, num(ms(r.Sync)), num(ms(r.P50())), num(ms(r.P99())), num(ms(r.Max())), r.Timeouts,
				num(ms(r.CPUPerChange)), num(ms(quantile(r.Apply, 0.5))), bytesText(r.BytesDownPerChange), bytesText(r.BytesUpPerChange),
				num(r.PushesPerAffected), bytesText(r.HeapPerEndpoint), bytesText(r.HeapPerClient), r.FinalMismatches)
		}
		b.WriteString("\n")
		b.WriteString(envoyTable(group))
		b.WriteString(churnTable(group))
	}
	b.WriteString("## Comparison lines\n\n```\n")
	for _, l := range Lines(results) {
		b.WriteString(l + "\n")
	}
	b.WriteString("```\n\n## Targets (issue 4)\n\n")
	b.WriteString(targets(results))
	return b.String()
}

// targets compares what was measured with the issue's targets. A target
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
	protocols := []bool{false}
	if slices.ContainsFunc(results, func(r Result) bool { return r.Delta }) {
		protocols = []bool{true}
		if slices.ContainsFunc(results, func(r Result) bool { return !r.Delta }) {
			protocols = []bool{false, true}
		}
	}
	for _, delta := range protocols {
		for _, n := range []struct {
			clients int
			limit   time.Duration
		}{{100, 25 * time.Millisecond}, {1000, 250 * time.Millisecond}} {
			sb, ok := pick(results, KindSwitchboard, n.clients, 1000, delta)
			name := fmt.Sprintf("convergence p99 ≤ %s at N=%d, R=1000", n.limit, n.clients)
			if delta {
				name += ", delta"
			}
			row(name, measuredMs(sb, ok, Result.P99), ok && sb.P99() <= n.limit, ok)
		}
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
	// The issue names no subscription for churn: every N=1000, R=1000 run
	// counts, and the measured text says which.
	var at100 ChurnResult
	var scen string
	ok := false
	for _, r := range results {
		if r.Kind != KindSwitchboard || r.Clients != 1000 || r.Services != 1000 {
			continue
		}
		for _, c := range r.Churn {
			if c.Rate == 100 && c.Skipped == "" && !ok {
				at100, scen, ok = c, r.scenario(), true
			}
		}
	}
	p99, low := at100.StalenessQuantile(0.99)
	measured := "–"
	if ok {
		measured = fmt.Sprintf("%s cores, p99 staleness %s (%s)", num(at100.CPUCores), boundMs(p99, low), scen)
	}
	row("churn 100 changes/s at N=1000, R=1000: ≤ 1 core and p99 staleness ≤ 500 ms", measured,
		ok && !low && at100.CPUCores <= 1 && p99 <= 500*time.Millisecond, ok)
	b.WriteString(envoyTargets(results))
	b.WriteString("\nTranslation targets (100k endpoints ≤ 100 ms, one-slice update ≤ 50 µs) are Go benchmarks: see the `go test -bench` output of the same run.\n")
	return b.String()
}

func pick(results []Result, k Kind, clients, services int, delta bool) (Result, bool) {
	for _, r := range results {
		if r.Kind == k && r.Clients == clients && r.Services == services && r.PerClient == 0 && r.Delta == delta {
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

// churnTable renders the churn phases of one scenario ("" without churn).
func churnTable(group []Result) string {
	var b strings.Builder
	for _, r := range group {
		for _, c := range r.Churn {
			if b.Len() == 0 {
				fmt.Fprintf(&b, "Churn, %s per rate, Zipf over Services:\n\n", c.Duration)
				b.WriteString("| server | rate | changes | issue lag max | staleness p50 | p99 | max | not converged | CPU (cores) | pushes per client per s | down/s | up/s | final mismatches |\n")
				b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
			}
			if c.Skipped != "" {
				fmt.Fprintf(&b, "| %s | %d/s | skipped: %s | | | | | | | | | | |\n", r.Kind, c.Rate, c.Skipped)
				continue
			}
			p50, l50 := c.StalenessQuantile(0.5)
			p99, l99 := c.StalenessQuantile(0.99)
			mx, lmx := c.StalenessQuantile(1)
			fmt.Fprintf(&b, "| %s | %d/s | %d | %s ms | %s | %s | %s | %d | %s | %s | %s/s | %s/s | %d |\n",
				r.Kind, c.Rate, c.Changes, num(ms(c.IssueLag)), boundMs(p50, l50), boundMs(p99, l99), boundMs(mx, lmx),
				len(c.NotConverged), num(c.CPUCores), num(c.PushesPerClientPerSec), bytesText(c.BytesDownPerSec), bytesText(c.BytesUpPerSec), c.FinalMismatches)
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}
