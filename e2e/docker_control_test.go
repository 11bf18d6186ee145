//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/main/control"
)

// The control socket under a real engine: docker exec C mainstay …, with
// no flag, reaches the mainstay that is the container's PID 1 at the
// default path, /run/mainstay/control.sock, in the container's own layer.

// memcachedImage is the toolbox with Debian's memcached: the web-cache
// recipe's sidecar, without its Apache and cron.
func (d *dockerSetup) memcachedImage(t *testing.T) string {
	return d.image(t, "control-memcached", func(t *testing.T, dir string) {
		d.copyRelease(t, dir)
		writeFiles(t, dir, map[string]string{"Dockerfile": `FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends memcached \
 && rm -rf /var/lib/apt/lists/*
COPY mainstay /usr/local/bin/mainstay
ENTRYPOINT ["mainstay", "--log-format", "json"]
`})
	})
}

// mainUntilTerm is a main that is ready at once (readyMain) and ends with
// 0 on docker stop.
var mainUntilTerm = []string{"sh", "-c", `trap 'exit 0' TERM; touch /tmp/up; while :; do sleep 0.1; done`}

// ctl runs "docker exec [-u USER] C mainstay OP ARGS..." and returns its
// output (stdout and stderr) and exit status.
func (c *container) ctl(user, op string, args ...string) (string, int) {
	c.t.Helper()
	argv := []string{"exec"}
	if user != "" {
		argv = append(argv, "-u", user)
	}
	argv = append(append(argv, c.name, "mainstay", op), args...)
	out, err := dockerCmd(argv...)
	code := 0
	if err != nil {
		ee, ok := err.(interface{ ExitCode() int })
		if !ok {
			c.t.Fatalf("docker %s: %v", strings.Join(argv, " "), err)
		}
		code = ee.ExitCode()
	}
	return out, code
}

// status is "docker exec C mainstay status --json".
func (c *container) status(user string) control.Status {
	c.t.Helper()
	out, code := c.ctl(user, "status", "--json")
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		c.t.Fatalf("docker exec %s mainstay status --json: exit %d: %s", c.name, code, out)
	}
	return st
}

// memcachedServes asks the container's memcached for its version.
func (c *container) memcachedServes() bool {
	got, _ := c.exec("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/11211; printf 'version\\r\\n' >&3; head -n 1 <&3")
	return strings.HasPrefix(got, "VERSION ")
}

// TestDockerControlRestart: docker exec C mainstay status (the table and
// --json) and restart, with no flag: a memcached sidecar gets a new PID
// that serves, its restarts in a row are reset, and the log says who
// asked; as another user, status hides the command and restart is denied.
func TestDockerControlRestart(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	c := d.runDetached(t, "", append(append([]string{d.memcachedImage(t), "--restart-delay", "10ms",
		"--sidecar", "name=cache ready=tcp:127.0.0.1:11211 -- memcached -u nobody -l 127.0.0.1 -p 11211"},
		readyMain...), append([]string{"--"}, mainUntilTerm...)...)...)
	c.waitLogs(long, `"main in the foreground"`, 1)

	// A crash first, so that the restart has restarts in a row to reset.
	waitFor(t, long, "memcached serving", c.memcachedServes)
	first := childOf(c.status(""), "cache")
	if out, err := c.exec("sh", "-c", fmt.Sprintf("kill -KILL %d", first.PID)); err != nil || first.PID == 0 {
		t.Fatalf("kill -KILL %d (memcached): %v: %s", first.PID, err, out)
	}
	waitFor(t, long, "memcached back after its crash", func() bool {
		ch := childOf(c.status(""), "cache")
		return ch.State == "running" && ch.Restarts == 1 && c.memcachedServes()
	})

	table, code := c.ctl("", "status")
	if code != 0 || !strings.HasPrefix(table, "phase: ready, ready: yes\n") {
		t.Errorf("mainstay status: exit %d:\n%s", code, table)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(table, "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 6 {
			rows[f[0]] = f
		}
	}
	if r := rows["cache"]; r == nil || r[1] != "sidecar" || r[2] != "running" || r[5] != "1" {
		t.Errorf("the cache row %q in:\n%s", r, table)
	}
	if r := rows["main"]; r == nil || r[1] != "main" || r[2] != "running" {
		t.Errorf("the main row %q in:\n%s", r, table)
	}

	before := childOf(c.status(""), "cache")
	if strings.Join(before.Command, " ") != "memcached -u nobody -l 127.0.0.1 -p 11211" {
		t.Errorf("command %q", before.Command)
	}
	if out, code := c.ctl("", "restart", "cache"); code != 0 || out != "" {
		t.Fatalf("mainstay restart cache: exit %d: %q", code, out)
	}
	after := childOf(c.status(""), "cache")
	if after.PID == before.PID || after.PID == 0 || after.State != "running" || after.Restarts != 0 {
		t.Errorf("after the restart %+v, before %+v: want a new PID, running, 0 restarts", after, before)
	}
	if comm, err := c.exec("cat", fmt.Sprintf("/proc/%d/comm", after.PID)); err != nil || comm != "memcached" {
		t.Errorf("PID %d in the container: %q, %v", after.PID, comm, err)
	}
	if !c.memcachedServes() {
		t.Error("the new memcached does not answer")
	}
	if _, err := c.exec("test", "-e", fmt.Sprintf("/proc/%d", before.PID)); err == nil {
		t.Errorf("the old memcached (PID %d) is still there", before.PID)
	}
	asked := c.records("stopping sidecar: asked by an operator")
	if len(asked) != 1 || asked[0].str("sidecar") != "cache" || asked[0].str("op") != "restart" || !strings.HasPrefix(asked[0].str("by"), "uid 0 pid ") {
		t.Errorf(`"stopping sidecar: asked by an operator" records %v, want one saying who asked`, asked)
	}
	var done bool
	for _, l := range c.records("control request") {
		if l.str("op") == "restart" && l.str("result") == "done" && l.num("caller_uid") == 0 {
			done = true
		}
	}
	if !done {
		t.Errorf(`no "control request" record of the restart: %v`, c.records("control request"))
	}

	// Another user: status without the command, restart denied.
	if ch := childOf(c.status("nobody"), "cache"); ch.State != "running" || ch.PID != after.PID || ch.Command != nil {
		t.Errorf("status as nobody: %+v", ch)
	}
	if out, code := c.ctl("nobody", "restart", "cache"); code != 1 || !strings.Contains(out, "permission denied") {
		t.Errorf("restart as nobody: exit %d: %q", code, out)
	}
	if ch := childOf(c.status(""), "cache"); ch.PID != after.PID {
		t.Errorf("restarted all the same: %+v", ch)
	}

	c.stop()
	if code := c.waitExited(stopped); code != 0 {
		t.Errorf("exit code after docker stop: %d, want 0", code)
	}
}

// TestDockerControlStaleSocket: docker kill leaves the socket file in the
// container's layer (mainstay had no chance to remove it); docker start
// finds it stale (its lock is free), replaces it, and serves at the
// default path again.
func TestDockerControlStaleSocket(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	c := d.runDetached(t, "", append(append([]string{d.toolbox(t)}, readyMain...), append([]string{"--"}, mainUntilTerm...)...)...)
	c.waitLogs(long, `"main in the foreground"`, 1)
	if st := c.status(""); st.Phase != "ready" {
		t.Fatalf("status before docker kill: %+v", st)
	}
	docker(t, "kill", c.name)
	if code := c.waitExited(short); code != 137 {
		t.Errorf("exit code after docker kill %d, want 137", code)
	}
	if diff := docker(t, "diff", c.name); !strings.Contains(diff, "A /run/mainstay/control.sock\n") && !strings.HasSuffix(diff, "A /run/mainstay/control.sock") {
		t.Fatalf("no socket file left in the container's layer after docker kill; docker diff:\n%s", diff)
	}
	docker(t, "start", c.name)
	c.waitLogs(long, `"main in the foreground"`, 2)
	if st := c.status(""); st.Phase != "ready" || !st.Ready || childOf(st, "main").State != "running" {
		t.Errorf("status after docker start: %+v", st)
	}
	if out, code := c.ctl("", "health"); code != 0 || out != "ready" {
		t.Errorf("health after docker start: exit %d: %q", code, out)
	}
	if n := strings.Count(c.logs(), "no control socket"); n != 0 {
		t.Errorf("%d warnings about the control socket:\n%s", n, c.logs())
	}
	c.stop()
	if code := c.waitExited(stopped); code != 0 {
		t.Errorf("exit code after docker stop: %d, want 0", code)
	}
	if diff := docker(t, "diff", c.name); strings.Contains(diff, "/run/mainstay/control.sock\n") || strings.HasSuffix(diff, "/run/mainstay/control.sock") {
		t.Errorf("the socket file is left after docker stop; docker diff:\n%s", diff)
	}
}

// healthLog is the container's State.Health with its log: the last five
// checks.
type healthLog struct {
	Status string
	Log    []struct {
		Start    time.Time
		ExitCode int
		Output   string
	}
}

// TestDockerControlHealthLevels: a HEALTHCHECK of mainstay health --level
// alive stays healthy through a sidecar's restart, while docker exec C
// mainstay health (the ready level) reports it.
func TestDockerControlHealthLevels(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	// gate is ready (its file there) unless /tmp/hold exists when it
	// starts: the test holds a restart of it in "not ready yet".
	gate := `name=gate ready=file:/tmp/gate-up -- sh -c 'while [ -e /tmp/hold ]; do sleep 0.1; done; touch /tmp/gate-up; exec sleep infinity'`
	c := d.runDetached(t, "", append(append([]string{"--health-cmd", "mainstay health --level alive",
		"--health-interval", "500ms", "--health-timeout", "5s", "--health-retries", "1",
		d.toolbox(t), "--sidecar", gate}, readyMain...), append([]string{"--"}, mainUntilTerm...)...)...)
	c.waitLogs(long, `"main in the foreground"`, 1)
	c.waitHealth(long, "healthy")
	for _, level := range []string{"ready", "alive"} {
		if out, code := c.ctl("", "health", "--level", level); code != 0 || out != "ready" {
			t.Fatalf("health --level %s before: exit %d: %q", level, code, out)
		}
	}

	if out, err := c.exec("sh", "-c", "rm /tmp/gate-up && touch /tmp/hold"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	restarted := make(chan string, 1)
	go func() {
		out, err := dockerCmd("exec", c.name, "mainstay", "restart", "gate")
		restarted <- fmt.Sprintf("%q, %v", out, err)
	}()
	waitFor(t, short, "health --level ready to say restarting", func() bool {
		out, code := c.ctl("", "health")
		return code == 1 && out == "restarting"
	})
	held := time.Now()
	for time.Since(held) < 3*time.Second {
		if out, code := c.ctl("", "health", "--level", "alive"); code != 0 || out != "restarting" {
			t.Fatalf("health --level alive during the restart: exit %d: %q", code, out)
		}
		if s := c.state(); s.Health == nil || s.Health.Status != "healthy" {
			t.Fatalf("the HEALTHCHECK during the restart: %+v", s.Health)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var h healthLog
	if err := json.Unmarshal([]byte(c.inspect("json .State.Health")), &h); err != nil {
		t.Fatal(err)
	}
	during := 0
	for _, l := range h.Log {
		if l.Start.After(held) {
			during++
			if l.ExitCode != 0 || strings.TrimSpace(l.Output) != "restarting" {
				t.Errorf("a HEALTHCHECK during the restart: exit %d, %q", l.ExitCode, l.Output)
			}
		}
	}
	if during < 2 {
		t.Errorf("%d HEALTHCHECKs ran during the restart, want at least 2: %+v", during, h.Log)
	}
	if st := c.status(""); st.Phase != "restarting" || st.Ready || childOf(st, "gate").State != "starting" {
		t.Errorf("status during the restart: %+v", st)
	}

	if out, err := c.exec("rm", "/tmp/hold"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	select {
	case got := <-restarted:
		if got != `"", <nil>` {
			t.Errorf("mainstay restart gate: %s", got)
		}
	case <-time.After(long):
		t.Fatal("mainstay restart gate did not return once gate was ready")
	}
	for _, level := range []string{"ready", "alive"} {
		if out, code := c.ctl("", "health", "--level", level); code != 0 || out != "ready" {
			t.Errorf("health --level %s after: exit %d: %q", level, code, out)
		}
	}
	if s := c.state(); s.Health == nil || s.Health.Status != "healthy" {
		t.Errorf("the HEALTHCHECK after the restart: %+v", s.Health)
	}
}
