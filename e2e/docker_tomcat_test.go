//go:build e2e

package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// tomcatUp bounds Tomcat's start: the page's ready-timeout=180s, then
// Apache's start and the HEALTHCHECK's interval.
const tomcatUp = 4 * time.Minute

// adopted matches mainstay's line for the JVM it read from the PID file.
var adopted = regexp.MustCompile(`msg="daemon adopted" sidecar=tomcat pid=([0-9]+)`)

// TestDockerRecipeApacheTomcat builds docs/recipes/apache-tomcat.md's
// image and runs it as the page does: Tomcat started by catalina.sh start
// as a pidfile= sidecar, the JVM adopted (mainstay's child, user tomcat,
// the PID of the file), /app/ answered by that JVM through Apache, the
// HEALTHCHECK starting → healthy; the JVM killed with SIGKILL is restarted
// by running catalina.sh start again, and the new JVM is adopted and
// serves /app/; the tidy-logs job is scheduled and its command, run as its
// user, deletes only old logs; docker stop stops Apache, then Tomcat, each
// with its own shutdown lines, Tomcat's in docker logs with its [tomcat]
// prefix, nothing left for the sweep, exit code 0; and the next docker
// start, with the last run's PID file still there, is healthy again.
func TestDockerRecipeApacheTomcat(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	img := d.recipeImage(t, "apache-tomcat.md")
	c := d.runDetached(t, "", img)
	if s := c.state(); s.Health == nil || s.Health.Status != "starting" {
		t.Fatalf("health right after docker run: %+v, want starting", s.Health)
	}
	c.waitHealth(tomcatUp, "healthy")
	get := func(path string) (string, error) {
		return c.exec("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80; printf 'GET "+path+" HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
	}
	// jvm is the n-th adopted JVM's PID (from 1), once ready, checked
	// against the PID file, docker top and what it answers through Apache.
	tomcat := c.uidOf("tomcat")
	jvm := func(n int) string {
		t.Helper()
		c.waitLogs(tomcatUp, `msg="daemon adopted" sidecar=tomcat`, n)
		m := adopted.FindAllStringSubmatch(c.logs(), -1)
		if len(m) < n {
			t.Fatalf("%d adopted lines match %s", len(m), adopted)
		}
		// A PID may come again in the next container: its k-th ready line.
		pid, k := m[n-1][1], 0
		for _, a := range m[:n] {
			if a[1] == pid {
				k++
			}
		}
		c.waitLogs(tomcatUp, `msg="sidecar ready" sidecar=tomcat pid=`+pid+" ", k)
		if file, err := c.exec("cat", "/run/tomcat/tomcat.pid"); file != pid || err != nil {
			t.Errorf("PID file: %q, %v; adopted %s", file, err, pid)
		}
		if ppid, err := c.exec("ps", "-o", "ppid=", "-p", pid); strings.TrimSpace(ppid) != "1" || err != nil {
			t.Errorf("JVM %s's parent: %q, %v; want mainstay, PID 1", pid, ppid, err)
		}
		var javas []topProc
		for _, p := range c.top() {
			if strings.HasPrefix(p.args, "/usr/bin/java ") {
				javas = append(javas, p)
			}
		}
		if len(javas) != 1 || javas[0].uid != tomcat {
			t.Errorf("JVMs in docker top: %+v, want one, as tomcat's uid %s", javas, tomcat)
		}
		got, err := get("/app/")
		if err != nil || !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.Contains(got, "Server: Apache/") ||
			!strings.Contains(got, "Hello from Apache Tomcat/") || !strings.HasSuffix(got, "JVM "+pid) {
			t.Errorf("GET /app/ through Apache: %q, %v; want JVM %s's answer", got, err, pid)
		}
		return pid
	}
	first := jvm(1)
	if u := c.userOf("mainstay"); u != "0" {
		t.Errorf("mainstay runs as uid %s, want root", u)
	}
	if !strings.Contains(c.logs(), "[tomcat] ") {
		t.Error("no [tomcat] line in docker logs: CATALINA_OUT=/dev/stdout did not reach mainstay's pipe")
	}

	// The JVM dies; catalina.sh start runs again and its JVM is adopted.
	if out, err := c.exec("kill", "-9", first); err != nil {
		t.Fatalf("docker exec kill -9 %s: %v: %s", first, err, out)
	}
	c.waitLogs(long, `msg="sidecar exited; restarting" sidecar=tomcat pid=`+first+" exit_code=137 ", 1)
	second := jvm(2)
	if second == first {
		t.Errorf("the JVM after the restart is %s again", second)
	}
	c.waitHealth(tomcatUp, "healthy")

	checkTidyLogs(t, c)

	c.stop()
	if code := c.waitExited(stopped); code != 0 {
		t.Errorf("exit code after docker stop: %d, want 0", code)
	}
	checkTomcatStop(t, c, 1)

	// The JVM does not remove its PID file when it exits; mainstay removes
	// it before catalina.sh start, which would otherwise find a PID that
	// the new container may have given to another process.
	docker(t, "start", c.name)
	c.waitLogs(tomcatUp, `msg="main in the foreground"`, 2)
	c.waitHealth(tomcatUp, "healthy")
	jvm(3)
	c.stop()
	if code := c.waitExited(stopped); code != 0 {
		t.Errorf("exit code after the second docker stop: %d, want 0", code)
	}
	checkTomcatStop(t, c, 2)
}

// checkTidyLogs: the page's tidy-logs job is scheduled, and its command,
// run as its user, deletes Tomcat's logs older than a week and keeps the
// others (the schedule is daily: the test does not wait for a run).
func checkTidyLogs(t *testing.T, c *container) {
	t.Helper()
	if !strings.Contains(c.logs(), `msg="cron entry scheduled" cron=tidy-logs schedule=@daily`) {
		t.Error("the tidy-logs job is not scheduled")
	}
	var job string
	ep := readRecipe(t, "apache-tomcat.md").entrypoint
	for i, a := range ep[:len(ep)-1] {
		if a == "--cron" && strings.Contains(ep[i+1], "name=tidy-logs") {
			job = ep[i+1]
		}
	}
	opts, cmd, ok := strings.Cut(job, " -- ")
	if !ok || !strings.Contains(" "+opts+" ", " user=tomcat ") {
		t.Fatalf("the page's tidy-logs job: %q, want user=tomcat and a command", job)
	}
	asTomcat := func(args ...string) (string, error) {
		return dockerCmd(append([]string{"exec", "-u", "tomcat", c.name}, args...)...)
	}
	const old, recent = "/var/log/tomcat10/localhost_access_log.2026-01-01.txt", "/var/log/tomcat10/catalina.2026-01-08.log"
	if out, err := asTomcat("sh", "-c", "touch -d '8 days ago' "+old+" && touch -d '6 days ago' "+recent); err != nil {
		t.Fatalf("planting logs: %v: %s", err, out)
	}
	if out, err := asTomcat(strings.Fields(cmd)...); err != nil {
		t.Errorf("the job's command as tomcat: %v: %s", err, out)
	}
	ls, _ := c.exec("ls", "/var/log/tomcat10")
	if strings.Contains(ls, "2026-01-01") || !strings.Contains(ls, "2026-01-08") || strings.Count(ls, "catalina.") < 2 {
		t.Errorf("/var/log/tomcat10 after the job:\n%s\nwant the 8-day-old file gone, the others kept", ls)
	}
}

// checkTomcatStop: the n-th docker stop stopped Apache, then Tomcat, each
// cleanly and by its own shutdown, and left nothing to the sweep.
func checkTomcatStop(t *testing.T, c *container, n int) {
	t.Helper()
	// The container's exit can be reported before docker logs has the
	// last of its stdout, where Tomcat's lines are.
	c.waitLogs(long, "Stopping service [Catalina]", n)
	logs := c.logs()
	var order []string
	tomcatStops := 0
	for _, line := range strings.Split(logs, "\n") {
		switch {
		case strings.Contains(line, `msg="main exited"`):
			order = append(order, "main")
		case strings.Contains(line, `msg="stopping sidecar" sidecar=tomcat`):
			order = append(order, "tomcat")
		case strings.HasPrefix(line, "[tomcat] ") && strings.Contains(line, "Stopping service [Catalina]"):
			tomcatStops++
		}
	}
	if want := strings.Repeat(" main tomcat", n)[1:]; strings.Join(order, " ") != want {
		t.Errorf("stop order %v, want %s", order, want)
	}
	if got := strings.Count(logs, "caught SIGTERM, shutting down"); got != n {
		t.Errorf("%d× Apache's \"caught SIGTERM, shutting down\" in docker logs, want %d", got, n)
	}
	if tomcatStops != n {
		t.Errorf("%d× \"[tomcat] … Stopping service [Catalina]\" in docker logs, want %d", tomcatStops, n)
	}
	if got := strings.Count(logs, `msg="sidecar stopped" sidecar=tomcat`); got != n {
		t.Errorf("%d× \"sidecar stopped\" for tomcat, want %d", got, n)
	}
	for _, bad := range []string{"stopping leftover processes", "did not exit within grace"} {
		if strings.Contains(logs, bad) {
			t.Errorf("docker logs hold %q", bad)
		}
	}
}
