package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// reporter turns results into one human line per interval, for demos:
//
//	calls/s: backend-a 33  backend-b 34  backend-c 33  errors 0
//
// A backend that answered once stays listed, with 0 when it no longer gets
// calls, so a removal is visible. It is used from one goroutine only.
type reporter struct {
	every     time.Duration
	out       io.Writer
	start     time.Time
	counts    map[string]int
	seen      []string
	errors    int
	lastError string
}

func newReporter(every time.Duration, now time.Time, out io.Writer) *reporter {
	return &reporter{every: every, out: out, start: now, counts: map[string]int{}}
}

// add counts r and prints the lines for every interval that ended before r.
func (p *reporter) add(r result) error {
	t := time.UnixMilli(r.T)
	for t.Sub(p.start) >= p.every {
		if err := p.print(p.every); err != nil {
			return err
		}
		p.start = p.start.Add(p.every)
	}
	if r.Code != 0 {
		p.errors++
		p.lastError = fmt.Sprintf("code %d: %s", r.Code, r.Error)
		return nil
	}
	if _, ok := p.counts[r.Backend]; !ok {
		p.seen = append(p.seen, r.Backend)
		slices.Sort(p.seen)
	}
	p.counts[r.Backend]++
	return nil
}

// flush prints the partial interval that ends at now, if it had calls.
func (p *reporter) flush(now time.Time) {
	d := now.Sub(p.start)
	if d <= 0 || p.total() == 0 {
		return
	}
	_ = p.print(d)
}

func (p *reporter) total() int {
	n := p.errors
	for _, c := range p.counts {
		n += c
	}
	return n
}

// print writes one line with the rates over d and resets the counts.
func (p *reporter) print(d time.Duration) error {
	perSec := func(n int) int { return int(math.Round(float64(n) / d.Seconds())) }
	var b strings.Builder
	b.WriteString("calls/s:")
	for _, id := range p.seen {
		name := id
		if name == "" {
			name = "(no x-backend)"
		}
		fmt.Fprintf(&b, " %s %d ", name, perSec(p.counts[id]))
		p.counts[id] = 0
	}
	fmt.Fprintf(&b, " errors %d", perSec(p.errors))
	if p.errors > 0 {
		fmt.Fprintf(&b, " (last: %s)", p.lastError)
	}
	p.errors, p.lastError = 0, ""
	b.WriteByte('\n')
	_, err := io.WriteString(p.out, b.String())
	return err
}
