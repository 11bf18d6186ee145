package plan

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestParseSidecarDaemonKeys: pidfile=, env= (repeatable, a later value
// of a key winning), dir= and ready-timeout= are read; without
// ready-timeout=, --ready-timeout's value counts.
func TestParseSidecarDaemonKeys(t *testing.T) {
	sc, err := ParseSidecar(`name=tomcat pidfile=/run/tomcat//tomcat.pid env=CATALINA_BASE=/a "env=JAVA_OPTS=-Xmx1g -Dx=y" env=CATALINA_BASE=/b dir=/var/lib/tomcat10 ready-timeout=180s -- catalina.sh start`)
	if err != nil {
		t.Fatal(err)
	}
	if sc.PIDFile != "/run/tomcat/tomcat.pid" || sc.Dir != "/var/lib/tomcat10" || sc.ReadyTimeout(time.Minute) != 180*time.Second {
		t.Errorf("pidfile %q, dir %q, ready timeout %s", sc.PIDFile, sc.Dir, sc.ReadyTimeout(time.Minute))
	}
	env := sc.Environ([]string{"PATH=/bin", "CATALINA_BASE=/container"})
	if want := []string{"PATH=/bin", "JAVA_OPTS=-Xmx1g -Dx=y", "CATALINA_BASE=/b"}; !slices.Equal(env, want) {
		t.Errorf("environment %q, want %q", env, want)
	}
	plain, err := ParseSidecar("memcached")
	if err != nil {
		t.Fatal(err)
	}
	if plain.PIDFile != "" || plain.ReadyTimeout(time.Minute) != time.Minute {
		t.Errorf("a sidecar without the keys: pidfile %q, ready timeout %s", plain.PIDFile, plain.ReadyTimeout(time.Minute))
	}
	zero, _ := ParseSidecar("ready-timeout=0 -- memcached")
	if zero.ReadyTimeout(time.Minute) != 0 {
		t.Errorf("ready-timeout=0 gives %s, want 0 (no bound)", zero.ReadyTimeout(time.Minute))
	}
}

// TestCheckDaemons: pidfile= is refused when mainstay is neither PID 1
// nor a subreaper, and only then.
func TestCheckDaemons(t *testing.T) {
	daemon, _ := ParseSidecar("pidfile=/run/m.pid -- memcached -d -P /run/m.pid")
	plain, _ := ParseSidecar("memcached")
	p := &Plan{Sidecars: []*Sidecar{plain, daemon}}
	if err := p.CheckDaemons(true); err != nil {
		t.Errorf("as a subreaper: %v", err)
	}
	err := p.CheckDaemons(false)
	if err == nil || !strings.Contains(err.Error(), `sidecar "pidfile=/run/m.pid -- memcached -d -P /run/m.pid": pidfile= needs mainstay to be PID 1 or a child subreaper`) {
		t.Errorf("neither PID 1 nor a subreaper: %v", err)
	}
	if err := (&Plan{Sidecars: []*Sidecar{plain}}).CheckDaemons(false); err != nil {
		t.Errorf("no pidfile=: %v", err)
	}
}
