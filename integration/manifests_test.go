package integration

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/internal/poll"
)

// TestStandaloneBrokenManifest: a file that does not parse is reported and
// its last good content kept; other Services keep serving and following
// changes.
func TestStandaloneBrokenManifest(t *testing.T) {
	w, sb, runner := standalone(t)
	s := newScenario(t, w, sb, runner, clients.GoGRPC, 3*time.Minute)
	ctx := s.ctx
	ns := w.Namespace(t)
	b := backends(t, "m", 3)
	for _, name := range []string{"good", "victim"} {
		w.ApplyService(t, newService(ns, name, port...))
	}
	w.ApplySlice(t, newSlice(ns, "good", "good-1", port, ep(b[0], harness.Ready, "z1")))
	w.ApplySlice(t, newSlice(ns, "victim", "victim-1", port, ep(b[1], harness.Ready, "z1")))
	good := s.client("xds:///good." + ns + ":50051")
	victim := s.client("xds:///victim." + ns + ":50051")
	for _, c := range []struct {
		p  *clients.Process
		id string
	}{{good, b[0].ID()}, {victim, b[1].ID()}} {
		rs, err := c.p.WaitSpread(ctx, 20, c.id)
		s.check("serving before the breakage", rs, err)
	}

	// Break the victim's slice file and add a file with a broken document.
	w.writeBytes(t, w.path("slice", ns, "victim-1"), []byte("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: [not, a, map\n"))
	w.writeBytes(t, w.path("junk", ns, "x"), []byte("{{{ this is not yaml"))
	waitMetric(t, sb, "switchboard_watcher_manifest_errors_total", 2)
	if !strings.Contains(sb.out.String(), "slice-"+ns+"-victim-1.yaml") {
		t.Errorf("no log line names the broken file slice-%s-victim-1.yaml", ns)
	}

	// The broken file's last good content keeps serving ...
	rs, err := victim.WaitSpread(ctx, 20, b[1].ID())
	s.check("victim keeps its last good content", rs, err)
	// ... and other Services still follow changes.
	w.ApplySlice(t, newSlice(ns, "good", "good-1", port, ep(b[2], harness.Ready, "z1")))
	rs, err = good.WaitOnlyFrom(ctx, 20, b[2].ID())
	s.check("good follows changes after the breakage", rs, err)
	// Fixing the file applies its new content.
	w.ApplySlice(t, newSlice(ns, "victim", "victim-1", port, ep(b[0], harness.Ready, "z1")))
	rs, err = victim.WaitOnlyFrom(ctx, 20, b[0].ID())
	s.check("victim follows its fixed file", rs, err)
}

// waitMetric polls /metrics until the sum of a counter's series reaches min.
func waitMetric(t *testing.T, sb *switchboard, name string, minimum float64) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + name + `(\{[^}]*\})? ([0-9.e+]+)$`)
	sum := 0.0
	if !poll.Wait(30*time.Second, func() bool {
		_, body := sb.get("/metrics")
		sum = 0
		for _, m := range re.FindAllStringSubmatch(body, -1) {
			v, _ := strconv.ParseFloat(m[2], 64)
			sum += v
		}
		return sum >= minimum
	}) {
		t.Fatalf("%s = %v after 30s, want >= %v", name, sum, minimum)
	}
}
