package loadtest

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
)

// churnRun is the state of one Kind that its churn phases share: the
// running peer, the synced clients and the world as the single changes left
// it.
type churnRun struct {
	opts        *Options
	kind        Kind
	peer        *peer
	clients     []*client
	subscribers []int
	world       *World
	hash        hasher
	want        *expectedState
	tracker     *atomic.Pointer[churnTracker]
}

// run runs one phase per rate, numbering changes from firstK. A phase the
// Kind may not run (KindMaxRate), or any phase after one in which it fell
// behind, is recorded as skipped. An error means the peer or a client
// failed.
func (r *churnRun) run(ctx context.Context, firstK int) ([]ChurnResult, error) {
	co := &r.opts.Churn
	var out []ChurnResult
	behind := ""
	k := firstK
	for _, rate := range co.Rates {
		res := ChurnResult{Rate: rate, Duration: co.Duration}
		if limit, ok := co.KindMaxRate[r.kind]; ok && rate > limit {
			res.Skipped = fmt.Sprintf("above the kind's max rate %d/s", limit)
		} else if behind != "" {
			res.Skipped = behind
		}
		if res.Skipped != "" {
			out = append(out, res)
			continue
		}
		var err error
		res, err = r.phase(ctx, rate, k)
		k += res.Changes
		out = append(out, res)
		if err != nil {
			return out, fmt.Errorf("%d/s: %w", rate, err)
		}
		if res.Behind() {
			behind = fmt.Sprintf("behind at %d/s", rate)
		}
	}
	return out, nil
}

// phase issues rate changes per second for the configured duration without
// waiting for any to converge (open loop), then waits up to Drain for every
// change to reach every affected client, settles, and compares every
// client's state with the world's.
func (r *churnRun) phase(ctx context.Context, rate, firstK int) (ChurnResult, error) {
	co := &r.opts.Churn
	res := ChurnResult{Rate: rate, Duration: co.Duration}
	total := max(1, int(math.Round(float64(rate)*co.Duration.Seconds())))
	t := newChurnTracker(r.subscribers, r.want.assignments)
	r.tracker.Store(t)
	defer r.tracker.Store(nil)
	picker := newChurnPicker(co.Seed, co.ZipfS, r.opts.Services)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The writer decouples the issue schedule from the peer: a peer that
	// reads its commands late makes its changes stale, it does not slow
	// the issue of the next ones.
	queue := make(chan string, total)
	writeErr := make(chan error, 1)
	go func() {
		for {
			select {
			case cmd := <-queue:
				if err := r.peer.command("%s", cmd); err != nil {
					writeErr <- err
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	// The reader consumes the peer's answers, which tell when it has
	// applied every change and whether it failed.
	applied := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		for n := 0; n < total; {
			select {
			case line, ok := <-r.peer.lines:
				if !ok {
					readErr <- errPeerExited
					return
				}
				if msg, isErr := strings.CutPrefix(line, "error "); isErr {
					readErr <- fmt.Errorf("peer: %s", msg)
					return
				}
				if strings.HasPrefix(line, "ok ") {
					n++
				}
			case <-ctx.Done():
				return
			}
		}
		close(applied)
	}()
	failed := func() error {
		select {
		case err := <-writeErr:
			return err
		case err := <-readErr:
			return err
		default:
			return ctx.Err()
		}
	}

	pid := r.peer.cmd.Process.Pid
	cpu0, err := processCPU(pid)
	if err != nil {
		return res, err
	}
	down0, up0, resp0 := r.traffic()
	start := time.Now()
	for j := range total {
		due := start.Add(time.Duration(float64(j) * float64(time.Second) / float64(rate)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		res.IssueLag = max(res.IssueLag, time.Since(due))
		if err := failed(); err != nil {
			return res, err
		}
		i, k := picker.next(), firstK+j
		if err := r.world.ChangeService(k, i); err != nil {
			return res, err
		}
		if err := r.world.digest(r.hash, r.want, i); err != nil {
			return res, err
		}
		t.issue(i, r.want.assignments[i], time.Now().UnixNano())
		queue <- fmt.Sprintf("change %d %d", k, i)
		res.Changes++
	}
	window := time.Since(start)
	cpu1, err := processCPU(pid)
	if err != nil {
		return res, err
	}
	down1, up1, resp1 := r.traffic()
	sec := window.Seconds()
	res.CPUCores = (cpu1 - cpu0).Seconds() / sec
	res.PushesPerClientPerSec = float64(resp1-resp0) / float64(len(r.clients)) / sec
	res.BytesDownPerSec = float64(down1-down0) / sec
	res.BytesUpPerSec = float64(up1-up0) / sec

	t.seal()
	drain := time.NewTimer(co.Drain)
	defer drain.Stop()
	converged := false
	for wait := t.done; wait != nil; {
		select {
		case <-wait:
			if wait == t.done {
				converged, wait = true, applied // then the peer's last answers
			} else {
				wait = nil
			}
		case <-drain.C:
			wait = nil
		case err := <-writeErr:
			return res, err
		case err := <-readErr:
			return res, err
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	res.Staleness, res.NotConverged, res.Unknown = t.staleness(time.Now().UnixNano())
	if converged {
		quiesce(r.peer.cmd.Process.Pid, func() int64 { d, u, n := r.traffic(); return d + u + n }, r.opts.Settle)
	}
	res.FinalMismatches = finalMismatches(r.clients, r.want)
	for _, c := range r.clients {
		select {
		case <-c.done:
			return res, fmt.Errorf("client %d ended during churn: %w", c.id, c.err)
		default:
		}
	}
	return res, nil
}

// traffic sums the clients' counters.
func (r *churnRun) traffic() (down, up, responses int64) {
	for _, c := range r.clients {
		down, up, responses = down+c.bytesDown.Load(), up+c.bytesUp.Load(), responses+c.responses.Load()
	}
	return down, up, responses
}

// finalMismatches counts, over all clients, the subscribed resources whose
// last received content differs from want.
func finalMismatches(clients []*client, want *expectedState) int {
	n := 0
	for _, c := range clients {
		n += c.mismatches(want)
	}
	return n
}
