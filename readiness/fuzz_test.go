package readiness_test

import (
	"strings"
	"testing"

	"github.com/mainstay-dev/mainstay/readiness"
)

// FuzzParse: Parse never panics; a spec it accepts is the probe's String
// and parses again, and a refused one gets a one-line error that quotes
// the spec. The seeds (here and in testdata/fuzz/FuzzParse) run as
// ordinary tests; go test -fuzz FuzzParse ./readiness/ explores further.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"tcp:5432", "tcp:db:5432", "tcp:[::1]:5432", "tcp://127.0.0.1:6379", "tcp://db:5432/",
		"tcp:a/b:80", "tcp:::1:80", "tcp:", "tcp:65536", "tcp:[fe80::1%eth0]:80",
		"unix:/run/app.sock", "unix:///var/run/docker.sock", "unix://x", "unix:@abstract", "unix:",
		"file:/x", "file:", "exec:pg_isready -h localhost", "exec:a && b", `exec:'x`, "exec:",
		"http://localhost:8080/healthz?full=1", "http://", "http://:80/", "http://a!b/", "http:x",
		"https://db/ready", "https+insecure://localhost:8443/", "https+insecure:///x",
		"log:ready to accept", "log:(", "notify", "notify:", "notify:x", "", ":", "nocolon", "TCP:80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		p, err := readiness.Parse(spec)
		if err != nil {
			if p != nil {
				t.Errorf("Parse(%q) returned a probe with error %v", spec, err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "probe ") {
				t.Errorf("Parse(%q) error %q: want one line starting with probe", spec, msg)
			}
			return
		}
		if p.String() != spec {
			t.Errorf("Parse(%q).String() = %q, want the spec", spec, p.String())
		}
		if _, err := readiness.Parse(p.String()); err != nil {
			t.Errorf("Parse(%q) passed, but Parse of its String %q: %v", spec, p.String(), err)
		}
	})
}
