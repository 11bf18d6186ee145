//go:build e2e

package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The password of a probe URL shows nowhere: not in the lines of a probe
// that fails then passes, not in those of a timeout, at debug level or
// info, not in a usage error. The server checks that the real one is sent.

// secret is the password the tests give; it must not show.
const secret = "s3cret"

// authServer answers 401 to a request without user:s3cret, and 503 to
// the first three requests of each path, then 200; /never is always 503.
func authServer(t *testing.T) string {
	t.Helper()
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, pw, ok := r.BasicAuth(); !ok || u != "user" || pw != secret {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		calls[r.URL.Path]++
		n := calls[r.URL.Path]
		mu.Unlock()
		if r.URL.Path == "/never" || n <= 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	return "http://user:" + secret + "@" + srv.Listener.Addr().String()
}

// noSecret fails the test if the password shows in mainstay's stdout or
// stderr, and unless the redacted form does in stderr.
func noSecret(t *testing.T, r *run) {
	t.Helper()
	out, _ := os.ReadFile(filepath.Join(r.dir, "mainstay.out"))
	if strings.Contains(string(out), secret) {
		t.Errorf("stdout shows the password:\n%s", out)
	}
	errs := r.stderr()
	if strings.Contains(errs, secret) {
		t.Errorf("stderr shows the password:\n%s", errs)
	}
	if !strings.Contains(errs, "user:xxxxx@") {
		t.Errorf("stderr never names a probe as user:xxxxx@...:\n%s", errs)
	}
}

// TestRedactPassword: --ready, --wait-for and a sidecar's ready= with a
// password pass (the server saw it), or time out; the password shows in
// no line.
func TestRedactPassword(t *testing.T) {
	for _, level := range []string{"debug", "info"} {
		t.Run(level, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				t.Run("passes", func(t *testing.T) {
					base := authServer(t)
					dir := t.TempDir()
					r := start(t, m, dir, "--log-level", level, "--ready-interval", "5ms",
						"--wait-for", base+"/wait",
						"--sidecar", "name=side ready="+base+"/side -- sleep 30",
						"--ready", base+"/ready",
						"--", "sh", "-c", "sleep 1; echo main ran")
					if code := r.wait(long); code != 0 {
						t.Fatalf("exit code %d, want 0", code)
					}
					if got := r.stderr(); strings.Count(got, `msg="probe passed"`) != 3 {
						t.Errorf("want three probes passed:\n%s", got)
					}
					if level == "debug" && !strings.Contains(r.stderr(), `msg="probe failed"`) {
						t.Errorf("no failed attempt logged:\n%s", r.stderr())
					}
					noSecret(t, r)
				})
				t.Run("times out", func(t *testing.T) {
					base := authServer(t)
					for _, flag := range []string{"--wait-for", "--ready"} {
						dir := t.TempDir()
						r := start(t, m, dir, "--log-level", level, "--ready-timeout", "300ms",
							flag, base+"/never", "--", "sleep", "30")
						if code := r.wait(long); code != 124 {
							t.Fatalf("%s: exit code %d, want 124", flag, code)
						}
						if !strings.Contains(r.stderr(), `msg="probe still failing" probe=http://user:xxxxx@`) {
							t.Errorf("%s: no probe still failing line naming the probe:\n%s", flag, r.stderr())
						}
						noSecret(t, r)
					}
				})
			})
		})
	}
}

// TestRedactPasswordUsage: a spec refused at start, from a flag or its
// variable, and a sidecar whose program is missing: the error quotes the
// spec without its password.
func TestRedactPasswordUsage(t *testing.T) {
	bad := "http://user:" + secret + "@127.0.0.1:bad/"
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{"--ready", nil, []string{"--ready", bad}, 2},
		{"MAINSTAY_READY", []string{"MAINSTAY_READY=tcp:80\n" + bad}, nil, 2},
		{"--wait-for", nil, []string{"--wait-for", bad}, 2},
		{"ready=", nil, []string{"--sidecar", "ready=" + bad + " -- sleep 1"}, 2},
		{"MAINSTAY_SIDECAR", []string{"MAINSTAY_SIDECAR=ready=" + bad + " -- sleep 1"}, nil, 2},
		{"sidecar not found", nil, []string{"--sidecar", "ready=http://user:" + secret + "@127.0.0.1:1/ -- /nonexistent/x"}, 127},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := startWith(t, modes[1], dir, config{env: tt.env}, append(tt.args, "--", "true")...)
			if code := r.wait(long); code != tt.code {
				t.Fatalf("exit code %d, want %d:\n%s", code, tt.code, r.stderr())
			}
			noSecret(t, r)
		})
	}
}
