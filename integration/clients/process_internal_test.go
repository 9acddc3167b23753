package clients

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// fake runs a shell script as a client program. Like the real ones, it
// exits 0 on SIGTERM; "read x; exit 0" in a script waits for Stop.
func fake(t *testing.T, ctx context.Context, script string) *Process {
	t.Helper()
	script = "trap 'exit 0' TERM; " + script
	p, err := startProcess("fake", exec.CommandContext(ctx, "/bin/sh", "-c", script))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	return p
}

// line echoes one result line; the shell loops repeat it, so seq is 0.
func line(ms int, backend string, code int, msg string) string {
	return `echo '{"seq":0,"t":` + strconv.Itoa(ms) + `,"backend":"` + backend + `","code":` + strconv.Itoa(code) + `,"error":"` + msg + `"}'; `
}

func TestParseLine(t *testing.T) {
	r, err := parseLine([]byte(`{"seq":7,"t":1700000000123,"backend":"a","code":14,"error":"no"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Seq: 7, T: time.UnixMilli(1700000000123), Backend: "a", Code: codes.Unavailable, Err: "no"}
	if r.Seq != want.Seq || !r.T.Equal(want.T) || r.Backend != want.Backend || r.Code != want.Code || r.Err != want.Err {
		t.Errorf("parseLine = %+v, want %+v", r, want)
	}
	for _, bad := range []string{
		``, `hello`, `{"seq":0,"t":1,"backend":"a","code":0}`, `{"seq":0,"t":1,"backend":"a","code":0,"error":"","x":1}`,
		`{"seq":0,"t":"1","backend":"a","code":0,"error":""}`, `{"t":1,"backend":"a","code":0,"error":""}`,
		`{"seq":-1,"t":1,"backend":"a","code":0,"error":""}`,
	} {
		if _, err := parseLine([]byte(bad)); err == nil {
			t.Errorf("parseLine(%q) succeeded", bad)
		}
	}
}

func TestWaitHelpers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Two failures, then a/b alternating, then only a, then a clean exit.
	script := line(1, "", 4, "deadline") + line(2, "", 14, "no children") +
		"i=0; while [ $i -lt 10 ]; do " + line(3, "a", 0, "") + line(4, "b", 0, "") + "i=$((i+1)); done; " +
		"i=0; while [ $i -lt 10 ]; do " + line(5, "a", 0, "") + "i=$((i+1)); done; " +
		line(6, "", 14, "gone") + line(7, "", 14, "gone") + "read x; exit 0"
	p := fake(t, ctx, script)

	ok, err := p.WaitOK(ctx)
	if err != nil || ok.Backend != "a" {
		t.Fatalf("WaitOK = %v, %v; want a call from a", ok, err)
	}
	all, err := p.WaitFor(ctx, 0, func(w []Result) bool { return len(w) == 34 })
	if err != nil {
		t.Fatal(err)
	}
	if !Spread(20, "a", "b")(all[:22]) || Spread(20, "a", "b", "c")(all[:22]) {
		t.Error("Spread misjudged the alternating run")
	}
	if !LastK(10, From("a"))(all[:32]) || LastK(11, From("a"))(all[:32]) {
		t.Error("LastK(From) misjudged the run of a")
	}
	if last, found := LastFrom(all, "b"); !found || last.T != time.UnixMilli(4) {
		t.Errorf("LastFrom(b) = %v, %v", last, found)
	}
	if !LastK(2, func(r Result) bool { return r.Code == codes.Unavailable })(all) {
		t.Error("LastK misjudged the failures at the end")
	}
	if n := len(collect(p.Stream(ctx, 30))); n != 4 {
		t.Errorf("Stream from 30 delivered %d results before stop, want 4", n)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestRounds(t *testing.T) {
	r := func(seq int) Result { return Result{Seq: seq} }
	// Rounds of 3: round 0 is cut by the window (seq 1 and 2 only), round
	// 1 is complete with its lines in the order the calls ended, round 2
	// has not ended.
	got := Rounds([]Result{r(2), r(1), r(5), r(3), r(4), r(6), r(8)}, 3)
	if len(got) != 1 || len(got[0]) != 3 || got[0][0].Seq != 3 || got[0][1].Seq != 4 || got[0][2].Seq != 5 {
		t.Errorf("Rounds = %v, want only round 1, in seq order", got)
	}
	if c := (HeaderCycle{Key: "k", Values: []string{"a", "b", "c"}}); c.ValueOf(r(4)) != "b" {
		t.Errorf("ValueOf(seq 4) = %q, want b", c.ValueOf(r(4)))
	}
}

// collect drains ch until it has been quiet for a moment or closed.
func collect(ch <-chan Result) []Result {
	var out []Result
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, r)
		case <-time.After(200 * time.Millisecond):
			return out
		}
	}
}

func TestWaitReportsExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p := fake(t, ctx, line(1, "", 14, "nope")+"echo 'boom on stderr' >&2; exit 3")
	_, err := p.WaitBackend(ctx, "a")
	if !errors.Is(err, ErrExited) {
		t.Fatalf("WaitBackend = %v, want ErrExited", err)
	}
	if !strings.Contains(err.Error(), "boom on stderr") || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("error lacks stderr or last results: %v", err)
	}
	if err := p.Wait(ctx); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Wait = %v, want exit status 3", err)
	}
}

func TestWaitReportsMalformedOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p := fake(t, ctx, "echo 'starting up'; read x; exit 0")
	_, err := p.WaitOK(ctx)
	if err == nil || !strings.Contains(err.Error(), "starting up") {
		t.Fatalf("WaitOK = %v, want a malformed-line error", err)
	}
	if err := p.Stop(); err == nil {
		t.Error("Stop after a malformed line succeeded")
	}
}

func TestWaitHonoursContext(t *testing.T) {
	p := fake(t, t.Context(), line(1, "", 14, "unavailable")+"read x; exit 0")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := p.WaitFailing(ctx, 2, codes.Unavailable, "unavail")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFailing = %v, want DeadlineExceeded", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestStopAcceptsDeathBySIGTERM(t *testing.T) {
	// Like node before its handler is installed: SIGTERM kills it.
	p, err := startProcess("fake", exec.CommandContext(t.Context(), "/bin/sh", "-c", "exec sleep 30"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}
