package clients

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
)

// ErrExited is returned (wrapped) by the Wait methods when the program
// exited before the awaited condition held.
var ErrExited = errors.New("client exited")

// WaitFor waits until pred holds for the results from index from onwards
// (from is a value of Len, or 0 for all), and returns that window. pred is
// called again on every new result; it must not keep or modify the slice.
// The error reports ctx ending, the program exiting, or a malformed output
// line, with the last results and stderr attached.
func (p *Process) WaitFor(ctx context.Context, from int, pred func(window []Result) bool) ([]Result, error) {
	for {
		p.mu.Lock()
		window := p.window(from)
		changed, bad := p.changed, len(p.bad)
		p.mu.Unlock()
		if bad > 0 {
			return nil, p.failure(fmt.Errorf("%s broke the output contract", p.kind))
		}
		if pred(window) {
			return slices.Clone(window), nil
		}
		select {
		case <-changed:
		case <-p.done:
			// The last lines may have arrived with the exit: look once more.
			p.mu.Lock()
			window = p.window(from)
			p.mu.Unlock()
			if pred(window) {
				return slices.Clone(window), nil
			}
			return nil, p.failure(fmt.Errorf("%s: %w before the condition held", p.kind, ErrExited))
		case <-ctx.Done():
			return nil, p.failure(fmt.Errorf("%s: condition not reached: %w", p.kind, ctx.Err()))
		}
	}
}

// window returns results[from:], empty while fewer than from arrived. The
// caller holds p.mu; entries below the current length never change, so the
// slice may be read after unlocking.
func (p *Process) window(from int) []Result {
	if from >= len(p.results) {
		return nil
	}
	return p.results[from:]
}

// Stream delivers results from index from onwards, in order, until ctx ends
// or the program exits and everything was delivered; then it closes the
// channel. Each call starts its own reader; the Wait methods are unaffected.
func (p *Process) Stream(ctx context.Context, from int) <-chan Result {
	ch := make(chan Result)
	go func() {
		defer close(ch)
		next := from
		for {
			w, err := p.WaitFor(ctx, next, func(w []Result) bool { return len(w) > 0 })
			if err != nil {
				return
			}
			for _, r := range w {
				select {
				case ch <- r:
				case <-ctx.Done():
					return
				}
			}
			next += len(w)
		}
	}()
	return ch
}

// WaitOK waits for the first successful call since the program started,
// and returns it; r.T.Sub(p.Started()) is the client's startup time.
func (p *Process) WaitOK(ctx context.Context) (Result, error) {
	w, err := p.WaitFor(ctx, 0, func(w []Result) bool { return slices.ContainsFunc(w, Result.OK) })
	if err != nil {
		return Result{}, err
	}
	return w[slices.IndexFunc(w, Result.OK)], nil
}

// WaitBackend waits until a call made after WaitBackend was called is
// answered by backend, and returns that call.
func (p *Process) WaitBackend(ctx context.Context, backend string) (Result, error) {
	from := p.Len()
	isIt := func(r Result) bool { return r.OK() && r.Backend == backend }
	w, err := p.WaitFor(ctx, from, func(w []Result) bool { return slices.ContainsFunc(w, isIt) })
	if err != nil {
		return Result{}, fmt.Errorf("waiting for a call answered by %q: %w", backend, err)
	}
	return w[slices.IndexFunc(w, isIt)], nil
}

// WaitOnlyFrom waits until the last k calls, all made after WaitOnlyFrom was
// called, succeeded and were answered by members of backends. It returns
// every result since the call, so the caller can find the last call that
// still went elsewhere.
func (p *Process) WaitOnlyFrom(ctx context.Context, k int, backends ...string) ([]Result, error) {
	w, err := p.WaitFor(ctx, p.Len(), LastK(k, From(backends...)))
	if err != nil {
		return nil, fmt.Errorf("waiting for %d calls in a row answered only by %q: %w", k, backends, err)
	}
	return w, nil
}

// WaitSpread waits until the last k calls, all made after WaitSpread was
// called, succeeded, were answered only by members of backends and by every
// one of them at least once. It returns every result since the call.
func (p *Process) WaitSpread(ctx context.Context, k int, backends ...string) ([]Result, error) {
	w, err := p.WaitFor(ctx, p.Len(), Spread(k, backends...))
	if err != nil {
		return nil, fmt.Errorf("waiting for %d calls in a row spread over exactly %q: %w", k, backends, err)
	}
	return w, nil
}

// WaitFailing waits until the last k calls, all made after WaitFailing was
// called, failed with code and a message containing substr. It returns
// every result since the call.
func (p *Process) WaitFailing(ctx context.Context, k int, code codes.Code, substr string) ([]Result, error) {
	fails := func(r Result) bool { return r.Code == code && strings.Contains(r.Err, substr) }
	w, err := p.WaitFor(ctx, p.Len(), LastK(k, fails))
	if err != nil {
		return nil, fmt.Errorf("waiting for %d calls in a row failing with %s %q: %w", k, code, substr, err)
	}
	return w, nil
}

// LastK returns a WaitFor predicate: the window has at least k results and
// the last k all satisfy ok.
func LastK(k int, ok func(Result) bool) func([]Result) bool {
	return func(w []Result) bool {
		return len(w) >= k && !slices.ContainsFunc(w[len(w)-k:], func(r Result) bool { return !ok(r) })
	}
}

// From returns a Result test: the call succeeded and was answered by one of
// backends.
func From(backends ...string) func(Result) bool {
	return func(r Result) bool { return r.OK() && slices.Contains(backends, r.Backend) }
}

// Spread returns a WaitFor predicate: the last k results succeeded, came
// only from backends, and every one of backends answered at least one.
func Spread(k int, backends ...string) func([]Result) bool {
	only := LastK(k, From(backends...))
	return func(w []Result) bool {
		if !only(w) {
			return false
		}
		last := w[len(w)-k:]
		for _, b := range backends {
			if !slices.ContainsFunc(last, func(r Result) bool { return r.Backend == b }) {
				return false
			}
		}
		return true
	}
}

// LastFrom returns the last result in results answered by backend.
func LastFrom(results []Result, backend string) (Result, bool) {
	for i := len(results) - 1; i >= 0; i-- {
		if results[i].OK() && results[i].Backend == backend {
			return results[i], true
		}
	}
	return Result{}, false
}

// Rounds groups the results of a run with Options.Concurrency k by round
// (call n belongs to round n/k) and returns the complete rounds, oldest
// first, each ordered by Seq. A round with fewer than k results among
// results, because the window cut it or its calls have not all ended, is
// left out; so is a short last round of a Count run.
func Rounds(results []Result, k int) [][]Result {
	byRound := map[int][]Result{}
	for _, r := range results {
		byRound[r.Seq/k] = append(byRound[r.Seq/k], r)
	}
	var out [][]Result
	for _, n := range slices.Sorted(maps.Keys(byRound)) {
		if round := byRound[n]; len(round) == k {
			slices.SortFunc(round, func(a, b Result) int { return a.Seq - b.Seq })
			out = append(out, round)
		}
	}
	return out
}
