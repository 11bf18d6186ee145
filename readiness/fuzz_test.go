package readiness_test

import (
	"strings"
	"testing"

	"github.com/mainstay-dev/mainstay/readiness"
)

// FuzzParse: Parse never panics; a spec it accepts is the probe's String
// (but for a password, xxxxx there) and parses again, and a refused one
// gets a one-line error that quotes the spec. The seeds (here and in testdata/fuzz/FuzzParse) run as
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
		"http://u:pw@db/", "http://u:p/w@db/", "http://u:pw@db:x/", "https+insecure://:pw@db/", "tcp://u:pw@db:1",
		"exec:curl http://u:pw@db/", "log:(http://u:pw@db",
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
		// String is the spec, but for a password, which it hides.
		if p.String() != spec && !strings.Contains(p.String(), ":xxxxx@") {
			t.Errorf("Parse(%q).String() = %q, want the spec", spec, p.String())
		}
		again, err := readiness.Parse(p.String())
		if err != nil {
			t.Errorf("Parse(%q) passed, but Parse of its String %q: %v", spec, p.String(), err)
		} else if again.String() != p.String() {
			t.Errorf("Parse(%q).String() = %q, whose own String is %q", spec, p.String(), again.String())
		}
	})
}
