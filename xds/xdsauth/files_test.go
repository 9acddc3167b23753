package xdsauth

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-xds/switchboard/internal/testpki"
)

// pollDone runs creds.poll and fails the test if it blocks.
func pollDone(t *testing.T, creds *Credentials, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { creds.poll(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("poll blocked on %s", what)
	}
}

// TestSpecialFilesRefused: a FIFO at the certificate path neither blocks
// New nor the poller, a link to /dev/zero is not read without end, and a
// file over MaxFileBytes is refused; the previous material is kept.
func TestSpecialFilesRefused(t *testing.T) {
	p := newPKI(t)
	m := NewMetrics(prometheus.NewRegistry())
	creds, err := New(Options{CertFile: p.cert, KeyFile: p.key, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	before := creds.cur.Load()
	for i, replace := range []func() error{
		func() error { return syscall.Mkfifo(p.cert, 0o600) },
		func() error { return os.Symlink("/dev/zero", p.cert) },
		func() error { return os.WriteFile(p.cert, bytes.Repeat([]byte("A"), MaxFileBytes+1), 0o600) },
	} {
		if err := os.Remove(p.cert); err != nil {
			t.Fatal(err)
		}
		if err := replace(); err != nil {
			t.Fatal(err)
		}
		pollDone(t, creds, p.cert)
		if creds.cur.Load() != before {
			t.Fatalf("case %d replaced the material in use", i)
		}
		if n := testutil.ToFloat64(m.reloads.WithLabelValues("failure")); n != float64(i+1) {
			t.Errorf("case %d: reloads{result=failure} = %v, want %d", i, n, i+1)
		}
	}
	// New refuses them too, at once.
	done := make(chan error, 1)
	if err := os.Remove(p.cert); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p.cert, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() { _, err := New(Options{CertFile: p.cert, KeyFile: p.key}); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("New with a FIFO for a certificate: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("New blocked on a FIFO")
	}
}

// TestCertificateValidityChecked: New refuses an expired or not yet valid
// serving certificate with an error saying so; a reload to one keeps the
// previous certificate, logs an error and counts a failure.
func TestCertificateValidityChecked(t *testing.T) {
	p := newPKI(t)
	expiredCert, expiredKey := p.ca.Issue(t, t.TempDir(), "expired", testpki.Leaf{CommonName: "switchboard", NotAfter: time.Now().Add(-time.Minute)})
	_, err := New(Options{CertFile: expiredCert, KeyFile: expiredKey})
	if err == nil || !strings.Contains(err.Error(), "not valid now") || !strings.Contains(err.Error(), expiredCert) {
		t.Errorf("New with an expired certificate: %v, want an error naming it and saying it is not valid now", err)
	}
	// Issued an hour ago (testpki), so an hour and a half ago it was not
	// valid yet.
	early := func() time.Time { return time.Now().Add(-90 * time.Minute) }
	if _, err := New(Options{CertFile: p.cert, KeyFile: p.key, Now: early}); err == nil || !strings.Contains(err.Error(), "not valid now") {
		t.Errorf("New with a certificate not valid yet: %v", err)
	}

	var logs bytes.Buffer
	m := NewMetrics(prometheus.NewRegistry())
	creds, err := New(Options{CertFile: p.cert, KeyFile: p.key, Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	before := creds.cur.Load()
	copyFile(t, expiredCert, p.cert)
	copyFile(t, expiredKey, p.key)
	creds.poll()
	if creds.cur.Load() != before {
		t.Fatal("an expired certificate replaced the one in use")
	}
	if n := testutil.ToFloat64(m.reloads.WithLabelValues("failure")); n != 1 {
		t.Errorf("reloads{result=failure} = %v, want 1", n)
	}
	if got, want := testutil.ToFloat64(m.expiry), float64(before.notAfter.Unix()); got != want {
		t.Errorf("expiry gauge = %v, want the certificate in use's %v", got, want)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "expired or not yet valid") {
		t.Errorf("no error logged for an expired certificate:\n%s", logs.String())
	}
}
