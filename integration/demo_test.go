package integration

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `make demo`'s script on its scripted steps (inside this
// package's network namespace, so its fixed ports are free) and checks what
// a user would see: calls spread over the three backends, greeter-c's share
// drops to zero once it is not ready, and all three serve again at the end;
// and that it says it is compiling first.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../hack/demo.sh")
	cmd.Env = append(os.Environ(), "DEMO_SCRIPT_ONLY=1", "DEMO_STEP_SECONDS=3")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	// A first run compiles for minutes: the user is told so before it
	// starts, and how long it took after.
	if !regexp.MustCompile(`(?m)^demo: compiling .*\n.*first build.*minutes.*\n(?s:.*)^demo: compiled in \d+ s$`).Match(out) {
		t.Errorf("the demo does not say it is compiling, how long a first build takes, and how long it took:\n%s", out)
	}
	line := regexp.MustCompile(`calls/s: greeter-a (\d+)  greeter-b (\d+)  greeter-c (\d+)  errors 0`)
	phase, seen := "start", map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.Contains(l, "becomes not ready"):
			phase = "c-not-ready"
		case strings.Contains(l, "leaves the EndpointSlice"):
			phase = "b-gone"
		case strings.Contains(l, "both come back"):
			phase = "back"
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		all := m[1] != "0" && m[2] != "0" && m[3] != "0"
		switch {
		case (phase == "start" || phase == "back") && all:
			seen[phase] = true
		case phase == "c-not-ready" && m[3] == "0" && m[1] != "0" && m[2] != "0":
			seen[phase] = true
		case phase == "b-gone" && m[2] == "0" && m[3] == "0" && m[1] != "0":
			seen[phase] = true
		}
	}
	for _, p := range []string{"start", "c-not-ready", "b-gone", "back"} {
		if !seen[p] {
			t.Errorf("demo phase %q: no report line showed the expected spread\n%s", p, out)
		}
	}
}
