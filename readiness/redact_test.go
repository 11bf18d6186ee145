package readiness_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper/reapertest"
)

// The password of the tests below: it must show nowhere.
const secret = "s3cret"

// Redact hides the password of every URL in free text, and nothing else.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"http://u:s3cret@db/x":                         "http://u:xxxxx@db/x",
		"http://u@db/x":                                "http://u@db/x",
		"http://db:8080/x?a=b@c":                       "http://db:8080/x?a=b@c",
		"http://:s3cret@db":                            "http://:xxxxx@db",
		"http://u:@db/":                                "http://u:xxxxx@db/",
		"http://u:s3c@ret@db/":                         "http://u:xxxxx@db/",
		"http://u:s3cret@db":                           "http://u:xxxxx@db",
		`probe "http://u:s3cret@db": bad`:              `probe "http://u:xxxxx@db": bad`,
		"curl -u x http://u:s3cret@db -o /dev/nul":     "curl -u x http://u:xxxxx@db -o /dev/nul",
		"a=http://u:s3cret@a/ b=https://v:s3cret@b":    "a=http://u:xxxxx@a/ b=https://v:xxxxx@b",
		"MAINSTAY_READY=\"tcp:80\nhttp://u:s3cret@a\"": "MAINSTAY_READY=\"tcp:80\nhttp://u:xxxxx@a\"",
		"tcp:db:5432 file:/a:b@c unix:@x":              "tcp:db:5432 file:/a:b@c unix:@x",
		"":                                             "",
	} {
		if got := readiness.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// A spec's password shows neither in the probe's String nor in the error
// that refuses it; the user name and the rest of the spec do.
func TestParseHidesPassword(t *testing.T) {
	for _, tt := range []struct {
		spec, shown string // shown: String, or a fragment of the error
		ok          bool
	}{
		{"http://user:s3cret@db:8080/health?full=1", "http://user:xxxxx@db:8080/health?full=1", true},
		{"https://user:s3cret@db/", "https://user:xxxxx@db/", true},
		{"https+insecure://user:s3cret@db/", "https+insecure://user:xxxxx@db/", true},
		{"http://:s3cret@db/", "http://:xxxxx@db/", true},
		{"exec:curl -fsS http://user:s3cret@db/", "exec:curl -fsS http://user:xxxxx@db/", true},
		// net/url's error quotes the whole URL; the port error is kept.
		{"http://user:s3cret@db:bad/", `probe "http://user:xxxxx@db:bad/": invalid port ":bad" after host`, false},
		// net/url takes "cret@db" for the path and "s3" for a port.
		{"http://user:s3/cret@db/", `probe "http://user:xxxxx@db/": not a valid URL`, false},
		{"http://user:s3 cret@db/", `probe "http://user:xxxxx@db/": not a valid URL`, false},
		{"https+insecure://user:s3cret@/", `probe "https+insecure://user:xxxxx@/"`, false},
		// Split as HOST:PORT, its parts would show the password.
		{"tcp://user:s3cret@db:5432", `probe "tcp://user:xxxxx@db:5432": want tcp://HOST:PORT, without user information`, false},
		{"tcp://user:s3cret@db", `probe "tcp://user:xxxxx@db"`, false},
		// SplitCommand's and regexp's errors quote the command, the regexp.
		{"exec:curl http://user:s3cret@db/ && true", `command "curl http://user:xxxxx@db/ && true"`, false},
		{"log:(http://user:s3cret@db", "`(http://user:xxxxx@db`", false},
		{"unix://user:s3cret@db/x", `probe "unix://user:xxxxx@db/x"`, false},
	} {
		t.Run(tt.spec, func(t *testing.T) {
			p, err := readiness.Parse(tt.spec)
			if tt.ok != (err == nil) {
				t.Fatalf("Parse(%q) = %v, %v; want ok=%v", tt.spec, p, err, tt.ok)
			}
			got := ""
			if err != nil {
				got = err.Error()
				if !strings.Contains(got, tt.shown) {
					t.Errorf("error %q, want it to contain %q", got, tt.shown)
				}
			} else {
				got = p.String()
				if got != tt.shown {
					t.Errorf("String() = %q, want %q", got, tt.shown)
				}
				if h, ok := p.(readiness.HTTP); ok && strings.Contains(h.URL, secret) {
					t.Errorf("URL = %q shows the password", h.URL)
				}
			}
			if strings.Contains(got, secret) || strings.Contains(got, "s3") {
				t.Errorf("%q shows the password or a piece of it", got)
			}
		})
	}
}

// A wait on an http:// probe with a password, at debug level: the probe
// passes, so the real credentials were sent, and no log line shows them.
// Timed out, neither the NotReadyError nor the log does.
func TestWaitHidesPassword(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, pw, ok := r.BasicAuth()
		switch {
		case !ok || u != "user" || pw != secret:
			http.Error(w, "bad credentials", http.StatusUnauthorized)
		case r.URL.Path == "/never" || calls.Add(1) <= 3:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	host := srv.Listener.Addr().String()
	noPassword := func(t *testing.T, logs *reapertest.Log, err error) {
		t.Helper()
		recs := logs.Records(t)
		for _, r := range recs {
			if s := fmt.Sprint(r); strings.Contains(s, secret) {
				t.Errorf("log record shows the password: %s", s)
			}
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the password: %v", err)
		}
		if len(logs.Find(t, "probe failed")) == 0 {
			t.Errorf("no failed attempt logged, nothing was checked: %v", recs)
		}
	}
	cfg := func(log *slog.Logger, timeout time.Duration) readiness.Config {
		return readiness.Config{Timeout: timeout, Interval: time.Millisecond, AttemptTimeout: time.Second, Runner: runner, Log: log}
	}

	t.Run("passes", func(t *testing.T) {
		log, logs := reapertest.NewLog()
		p := mustParse(t, "https+insecure://user:"+secret+"@"+host+"/")
		if err := readiness.Wait(context.Background(), []readiness.Probe{p}, cfg(log, 20*time.Second)); err != nil {
			t.Fatalf("Wait = %v, want nil: the credentials were not sent", err)
		}
		if len(logs.Find(t, "probe passed", "probe", "https+insecure://user:xxxxx@"+host+"/")) != 1 {
			t.Errorf("no probe passed record with the redacted spec: %v", logs.Records(t))
		}
		noPassword(t, logs, nil)
	})
	t.Run("times out", func(t *testing.T) {
		log, logs := reapertest.NewLog()
		probes := []readiness.Probe{
			mustParse(t, "https+insecure://user:"+secret+"@"+host+"/never"),
			mustParse(t, "http://user:"+secret+"@"+closedPort(t)+"/"),
			mustParse(t, "https://user:"+secret+"@"+host+"/"), // the certificate is refused
		}
		err := readiness.Wait(context.Background(), probes, cfg(log, 300*time.Millisecond))
		var nr *readiness.NotReadyError
		if !errors.As(err, &nr) || len(nr.Failing) != len(probes) {
			t.Fatalf("Wait = %v, want a NotReadyError for every probe", err)
		}
		if !strings.Contains(err.Error(), "user:xxxxx@") {
			t.Errorf("error %q does not name the probes", err)
		}
		noPassword(t, logs, err)
	})
}
