package loadtest

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/switchboard-xds/switchboard/internal/worldgen"
)

// runEnvoy measures one Kind with Envoy-shaped clients (envoyClient) on
// the peer p, which serves world at addr: the initial sync, then
// opts.Changes endpoint changes (each converged when every client has
// ACKed the changed assignment with its new address), then opts.Adds
// added Services (each converged when every client has ACKed its cluster,
// its assignment and a route configuration with its virtual host). Every client follows
// every cluster, so every change and addition affects all of them.
func runEnvoy(ctx context.Context, opts *Options, p *peer, world *World, res Result, addr string, heapEmpty, heapWorld uint64) (Result, error) {
	h := newHasher()
	// The world's clusters and PassthroughCluster.
	var current atomic.Pointer[change]
	var adding atomic.Pointer[addition]
	clients := make([]*envoyClient, opts.Clients)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	}()
	syncStart := time.Now()
	for i := range clients {
		clients[i] = newEnvoyClient(i, world.NamespaceOf(i), opts.Services+1, h, &current, &adding)
		clients[i].delta = opts.Delta
		if err := clients[i].start(ctx, addr); err != nil {
			return res, err
		}
	}
	streams := make([]*adsStream, len(clients))
	for i, c := range clients {
		streams[i] = &c.adsStream
	}
	if err := waitSynced(streams, opts.SyncTimeout, "envoy client"); err != nil {
		return res, err
	}
	res.Sync = time.Since(syncStart)
	down, up, resp := envoyTotals(clients)
	res.SyncBytesPerClient = float64(down) / float64(len(clients))
	if n := envoyMismatches(clients, world); n > 0 {
		return res, fmt.Errorf("initial sync: %d clusters or assignments missing or different between clients", n)
	}
	if err := p.command("heap"); err != nil {
		return res, err
	}
	f, err := p.expect("heap", opts.SyncTimeout)
	if err != nil {
		return res, err
	}
	heapClients, _ := strconv.ParseUint(f[0], 10, 64)
	res.heap(opts, heapEmpty, heapWorld, heapClients)

	cpu0, err := processCPU(p.cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	phase := time.Now()
	for k := 1; k <= opts.Changes; k++ {
		if k > opts.MinChanges && opts.Budget > 0 && time.Since(phase) > opts.Budget {
			break
		}
		i, err := world.Change(k)
		if err != nil {
			return res, err
		}
		ch := &change{seq: k, name: world.Name(i), addr: addressField(worldgen.ChangeAddress(k).String()), done: make(chan struct{})}
		ch.remaining.Store(int64(len(clients)))
		current.Store(ch)
		lat, timedOut, err := await(ctx, p, opts, fmt.Sprintf("change %d", k), ch.done, &ch.end, &res.Apply)
		if err != nil {
			return res, fmt.Errorf("change %d: %w", k, err)
		}
		res.Latencies = append(res.Latencies, lat)
		if timedOut {
			res.Timeouts++
		}
		res.Changes++
	}
	current.Store(nil)
	quiesce(p.cmd.Process.Pid, func() int64 { d, u, r := envoyTotals(clients); return d + u + r }, opts.Settle)
	cpu1, err := processCPU(p.cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	down1, up1, resp1 := envoyTotals(clients)
	if k := float64(res.Changes); k > 0 {
		res.CPUPerChange = time.Duration(float64(cpu1-cpu0) / k)
		res.BytesDownPerChange = float64(down1-down) / k
		res.BytesUpPerChange = float64(up1-up) / k
		res.PushesPerAffected = float64(resp1-resp) / (k * float64(len(clients)))
	}
	for j := 1; j <= opts.Adds; j++ {
		i, err := world.AddService()
		if err != nil {
			return res, err
		}
		a := &addition{seq: j, cluster: world.Name(i), vhost: vhostField(world.Name(i)), done: make(chan struct{})}
		a.remaining.Store(int64(len(clients)))
		adding.Store(a)
		lat, timedOut, err := await(ctx, p, opts, fmt.Sprintf("add %d", j), a.done, &a.end, nil)
		if err != nil {
			return res, fmt.Errorf("add %d: %w", j, err)
		}
		res.AddLatencies = append(res.AddLatencies, lat)
		if timedOut {
			res.AddTimeouts++
		}
		res.Adds++
	}
	if res.Adds > 0 {
		quiesce(p.cmd.Process.Pid, func() int64 { d, u, r := envoyTotals(clients); return d + u + r }, opts.Settle)
		cpu2, err := processCPU(p.cmd.Process.Pid)
		if err != nil {
			return res, err
		}
		down2, _, _ := envoyTotals(clients)
		res.CPUPerAdd = time.Duration(float64(cpu2-cpu1) / float64(res.Adds))
		res.BytesDownPerAdd = float64(down2-down1) / float64(res.Adds)
	}
	res.FinalMismatches = envoyMismatches(clients, world)
	for _, c := range clients {
		select {
		case <-c.done:
			return res, fmt.Errorf("envoy client %d ended during the run: %w", c.id, c.err)
		default:
		}
	}
	return res, nil
}

// await sends one peer command (a change or an addition), waits for the
// peer's "ok" (appending its apply time to apply, when not nil) and then
// for done, and returns the time from the command until end, or
// ChangeTimeout and true when done did not close in time.
func await(ctx context.Context, p *peer, opts *Options, cmd string, done chan struct{}, end *atomic.Int64, apply *[]time.Duration) (time.Duration, bool, error) {
	start := time.Now()
	if err := p.command("%s", cmd); err != nil {
		return 0, false, err
	}
	ok, err := p.expect("ok", opts.ChangeTimeout)
	if err != nil {
		return 0, false, err
	}
	if len(ok) == 2 && apply != nil {
		ns, _ := strconv.ParseInt(ok[1], 10, 64)
		*apply = append(*apply, time.Duration(ns))
	}
	t := time.NewTimer(opts.ChangeTimeout)
	defer t.Stop()
	select {
	case <-done:
		return time.Unix(0, end.Load()).Sub(start), false, nil
	case <-t.C:
		return opts.ChangeTimeout, true, nil
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
}

func envoyTotals(clients []*envoyClient) (down, up, responses int64) {
	for _, c := range clients {
		down, up, responses = down+c.bytesDown.Load(), up+c.bytesUp.Load(), responses+c.responses.Load()
	}
	return down, up, responses
}

// envoyMismatches counts, over all clients, the clusters and assignments
// of the world's Services that a client lacks or holds with other content
// than client 0 (every change has been seen by every client with its new
// address when it converged; this checks that they also agree at the
// end). Envoy clients of one peer all get the same clusters and
// assignments.
func envoyMismatches(clients []*envoyClient, world *World) int {
	if len(clients) == 0 {
		return 0
	}
	refA, refC := clients[0].digests()
	n := 0
	for i := range world.Total() {
		name := world.Name(i)
		if refA[name] == 0 || refC[name] == 0 {
			n += len(clients)
		}
	}
	for _, c := range clients[1:] {
		as, cs := c.digests()
		for i := range world.Total() {
			name := world.Name(i)
			if as[name] != refA[name] || cs[name] != refC[name] {
				n++
			}
		}
	}
	return n
}
