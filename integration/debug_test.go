package integration

import (
	"net/http"
	"strings"
	"testing"
)

// TestDebugViewsOnDebugPort: /debug/* is served on --debug-address only,
// and not at all with --debug-address "".
func TestDebugViewsOnDebugPort(t *testing.T) {
	bin, _ := binaries(t)
	w := newFolderWorld(t)
	sb := startSwitchboard(t, bin, "--manifests", w.dir)
	for _, path := range []string{"/debug/clients", "/debug/diagnostics"} {
		if code, _ := sb.get(path); code != http.StatusOK {
			t.Errorf("debug port %s = %d, want 200", path, code)
		}
		resp, err := http.Get("http://" + sb.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("admin port %s = %d, want 404", path, resp.StatusCode)
		}
	}
	if code, _ := sb.get("/metrics"); code != http.StatusOK {
		t.Errorf("admin port /metrics = %d, want 200", code)
	}

	off := startSwitchboard(t, bin, "--manifests", w.dir, "--debug-address", "")
	if resp, err := http.Get("http://" + off.debug + "/debug/clients"); err == nil {
		resp.Body.Close()
		t.Errorf("with --debug-address \"\", %s still answers", off.debug)
	}
	if !strings.Contains(off.out.String(), "debug=off") {
		t.Errorf("the start line does not say the debug server is off:\n%s", off.out.String())
	}
}
