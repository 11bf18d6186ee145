//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// markerMain is a main that writes main.started and then waits.
func markerMain(t *testing.T, dir string) []string {
	return []string{"--", script(t, dir, "main.sh", `touch "$D/main.started"; exec sleep 1000`)}
}

// TestBeforeRetries: a task that fails twice then succeeds is run three
// times and main starts after it; one that always fails ends mainstay with
// the last try's code, main never started, the tries counted in the log.
func TestBeforeRetries(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		flaky := script(t, dir, "flaky.sh", `echo try >> "$D/tries"; [ "$(wc -l < "$D/tries")" -ge 3 ]`)
		args := append([]string{"--log-format", "json", "--helper-retries", "3", "--restart-delay", "10ms", "--before", flaky}, markerMain(t, dir)...)
		r := start(t, m, dir, args...)
		waitFor(t, short, "main.started", func() bool { return exists(filepath.Join(dir, "main.started")) })
		if n := len(lines(filepath.Join(dir, "tries"))); n != 3 {
			t.Errorf("the task ran %d times, want 3", n)
		}
		retries := r.logsWith("before task failed; retrying")
		if len(retries) != 2 || retries[0].num("try") != 1 || retries[1].num("try") != 2 || retries[1].num("tries") != 4 {
			t.Errorf("retry log lines: %v", retries)
		}
		if ok := r.logsWith("before task succeeded"); len(ok) != 1 || !r.mustLog("main started").time().After(ok[0].time()) && !r.mustLog("main started").time().Equal(ok[0].time()) {
			t.Errorf("before task succeeded %v, then main started", ok)
		}
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 143 {
			t.Errorf("exit %d after SIGTERM, want 143 (sleep killed by it)", code)
		}

		dir2 := t.TempDir()
		failing := script(t, dir2, "fail.sh", `echo try >> "$D/tries"; exit $((6 + $(wc -l < "$D/tries")))`)
		args = append([]string{"--log-format", "json", "--helper-retries", "3", "--restart-delay", "10ms", "--before", failing}, markerMain(t, dir2)...)
		r2 := start(t, m, dir2, args...)
		if code := r2.wait(long); code != 10 {
			t.Errorf("exit %d, want 10 (the fourth try's code)", code)
		}
		if n := len(lines(filepath.Join(dir2, "tries"))); n != 4 {
			t.Errorf("the task ran %d times, want 4", n)
		}
		if l := r2.mustLog("before task failed; main not started"); l != nil && (l.num("tries") != 4 || l.num("exit_code") != 10 || !strings.Contains(l.str("err"), "after 4 tries")) {
			t.Errorf("final log line: %v", l)
		}
		if exists(filepath.Join(dir2, "main.started")) {
			t.Error("main started after a failed before task")
		}
		r2.mustNotLog("main started")
	})
}

// TestBeforeRetryStoppedBySignal: SIGTERM during the delay before a retry
// ends mainstay at once with 143; the retry never runs.
func TestBeforeRetryStoppedBySignal(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		failing := script(t, dir, "fail.sh", `echo try >> "$D/tries"; exit 1`)
		args := append([]string{"--log-format", "json", "--helper-retries", "3", "--restart-delay", "1h", "--restart-max-delay", "1h", "--before", failing}, markerMain(t, dir)...)
		r := start(t, m, dir, args...)
		r.waitLog("before task failed; retrying")
		sent := time.Now()
		r.signal(syscall.SIGTERM)
		if code := r.wait(short); code != 143 {
			t.Errorf("exit %d, want 143", code)
		}
		if d := r.endedAt().Sub(sent); d > 2*time.Second {
			t.Errorf("mainstay took %s to exit after SIGTERM during the backoff", d)
		}
		if n := len(lines(filepath.Join(dir, "tries"))); n != 1 {
			t.Errorf("the task ran %d times, want 1", n)
		}
		r.mustLog("stopped before main started")
		r.mustNotLog("main started")
	})
}

// TestWaitForTimeout: the dependency never answers: exit 124, no before
// task and no main started, each failing spec logged with its last error.
func TestWaitForTimeout(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		addr := closedPort(t)
		before := script(t, dir, "before.sh", `touch "$D/before.ran"`)
		args := append([]string{"--log-format", "json", "--wait-for-timeout", "500ms",
			"--wait-for", "tcp:127.0.0.1:" + addr, "--wait-for", "file:" + filepath.Join(dir, "never"), "--before", before}, markerMain(t, dir)...)
		r := start(t, m, dir, args...)
		if code := r.wait(long); code != 124 {
			t.Errorf("exit %d, want 124", code)
		}
		if exists(filepath.Join(dir, "before.ran")) || exists(filepath.Join(dir, "main.started")) {
			t.Error("a before task or main was started")
		}
		failing := map[string]string{}
		for _, l := range r.logsWith("probe still failing") {
			failing[l.str("probe")] = l.str("err")
		}
		if e := failing["tcp:127.0.0.1:"+addr]; !strings.Contains(e, "connection refused") {
			t.Errorf("tcp spec's last error %q, want connection refused (all: %v)", e, failing)
		}
		if e := failing["file:"+filepath.Join(dir, "never")]; !strings.Contains(e, "no such file") {
			t.Errorf("file spec's last error %q (all: %v)", e, failing)
		}
		r.mustLog("dependencies not ready in time; main not started")
		r.mustNotLog("before task started")
	})
}

// TestBeforeMainTERM: SIGTERM while waiting for a dependency, and while a
// before task runs, ends mainstay with 143 (128+15: no main exists to take
// the code from); the task's whole process group is killed and main never
// starts.
func TestBeforeMainTERM(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		args := append([]string{"--log-format", "json", "--log-level", "debug", "--wait-for", "tcp:127.0.0.1:" + closedPort(t)}, markerMain(t, dir)...)
		r := start(t, m, dir, args...)
		if l := r.waitLog("probe failed"); l.str("phase") != "wait-for" {
			t.Errorf("probe failed in phase %q, want wait-for", l.str("phase"))
		}
		r.signal(syscall.SIGTERM)
		if code := r.wait(short); code != 143 {
			t.Errorf("TERM while waiting: exit %d, want 143", code)
		}
		if l := r.mustLog("stopped before main started"); l != nil && l.num("exit_code") != 143 {
			t.Errorf("log: %v", l)
		}
		if exists(filepath.Join(dir, "main.started")) {
			t.Error("main started")
		}

		dir2 := t.TempDir()
		task := script(t, dir2, "task.sh", `sleep 1000 & echo $! > "$D/child.pid"; echo $$ > "$D/task.pid"; wait`)
		args = append([]string{"--log-format", "json", "--before", task}, markerMain(t, dir2)...)
		r2 := start(t, m, dir2, args...)
		taskProc, child := r2.pidFile("task.pid"), r2.pidFile("child.pid")
		r2.signal(syscall.SIGTERM)
		if code := r2.wait(short); code != 143 {
			t.Errorf("TERM during a before task: exit %d, want 143", code)
		}
		mustBeGone(t, "the before task", taskProc)
		mustBeGone(t, "the before task's child", child)
		if l := r2.mustLog("stopped before main started"); l != nil && l.str("phase") != "stop" {
			t.Errorf("log: %v", l)
		}
		if exists(filepath.Join(dir2, "main.started")) {
			t.Error("main started")
		}
	})
}

// TestWaitForNameResolvesLater: a host name that does not resolve yet is a
// failed attempt, retried: once /etc/hosts has it (a private copy,
// bind-mounted in mainstay's own mount namespace), the probe passes and
// main starts.
func TestWaitForNameResolvesLater(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		hosts := filepath.Join(dir, "hosts")
		resolv := filepath.Join(dir, "resolv.conf")
		writeFile(t, hosts, "127.0.0.1 localhost\n", 0o644) // in place: the bind mount sees it
		// DNS lookups go to a loopback port nothing serves: refused at once.
		writeFile(t, resolv, "nameserver 127.0.0.1\n", 0o644) // in place: the bind mount sees it
		wrap := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"`, hosts, resolv}
		args := append([]string{"--log-format", "json", "--log-level", "debug", "--wait-for-timeout", "30s",
			"--wait-for", fmt.Sprintf("tcp:db.mainstay-test:%d", port)}, markerMain(t, dir)...)
		r := startWith(t, m, dir, config{wrap: wrap}, args...)
		waitFor(t, short, "a failed lookup", func() bool {
			for _, l := range r.logsWith("probe failed") {
				if strings.Contains(l.str("err"), "lookup db.mainstay-test") {
					return true
				}
			}
			return false
		})
		writeFile(t, hosts, "127.0.0.1 localhost\n127.0.0.1 db.mainstay-test\n", 0o644) // in place: the bind mount sees it
		added := time.Now()
		waitFor(t, long, "main.started", func() bool { return exists(filepath.Join(dir, "main.started")) })
		t.Logf("main started %s after the hosts entry was added", time.Since(added).Round(time.Millisecond))
		r.mustLog("probe passed")
		r.signal(syscall.SIGTERM)
		r.wait(long)
	})
}

// netnsPair makes two network namespaces joined by a veth pair, "db" at
// dbAddr and "app" at appAddr (a /24 of their own, reachable only between
// them), and deletes both at the end of the test.
func netnsPair(t *testing.T, tag, dbAddr, appAddr string) (db, app string) {
	t.Helper()
	db, app = fmt.Sprintf("mst-db-%d-%s", os.Getpid(), tag), fmt.Sprintf("mst-app-%d-%s", os.Getpid(), tag)
	ipCmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %q: %v\n%s", args, err, out)
		}
	}
	for _, ns := range []string{db, app} {
		ipCmd("netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
	}
	ipCmd("link", "add", "veth-app", "netns", app, "type", "veth", "peer", "name", "veth-db", "netns", db)
	for _, x := range []struct{ ns, dev, addr string }{{db, "veth-db", dbAddr}, {app, "veth-app", appAddr}} {
		ipCmd("-n", x.ns, "addr", "add", x.addr+"/24", "dev", x.dev)
		ipCmd("-n", x.ns, "link", "set", x.dev, "up")
		ipCmd("-n", x.ns, "link", "set", "lo", "up")
	}
	return db, app
}

// TestAppContainerPattern is the application container of a Compose
// project: PostgreSQL runs in a "container" of its own (its own PID and
// network namespaces, under a mainstay of its own, on its own address),
// started 2 s after the app's mainstay. The app's mainstay waits for it
// with --wait-for tcp: and exec:pg_isready, runs a psql migration with
// --before, then starts an HTTP server (busybox httpd) with an http: probe.
// The migration runs exactly once, after the database accepts queries, and
// main starts after it.
func TestAppContainerPattern(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		const dbAddr, appAddr = "10.213.0.1", "10.213.0.2"
		dbNS, appNS := netnsPair(t, m.name, dbAddr, appAddr)
		p := newPG(t)
		hba := filepath.Join(p.data, "pg_hba.conf")
		f, err := os.OpenFile(hba, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		// The app, and the test's own queries from inside the db namespace.
		fmt.Fprintf(f, "host all all %s/32 trust\nhost all all %s/32 trust\n", appAddr, dbAddr)
		f.Close()
		migration := p.file("001_app.sql", `CREATE TABLE IF NOT EXISTS migration_runs (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
INSERT INTO migration_runs DEFAULT VALUES;
`)
		www := filepath.Join(p.dir, "www")
		if err := os.Mkdir(www, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(www, "index.html"), "shop\n", 0o644)
		httpPort := freePort(t)

		appDir := t.TempDir()
		readyFile := filepath.Join(appDir, "ready")
		start0 := time.Now()
		app := startWith(t, m, appDir, config{wrap: []string{"ip", "netns", "exec", appNS}},
			"--log-format", "json", "--log-level", "debug", "--wait-for-timeout", "30s", "--ready-file", readyFile,
			"--wait-for", fmt.Sprintf("tcp:%s:%d", dbAddr, p.port),
			"--wait-for", fmt.Sprintf("exec:pg_isready -q -h %s -p %d -U postgres", dbAddr, p.port),
			"--before", fmt.Sprintf("psql -X -q -1 -h %s -p %d -U postgres -v ON_ERROR_STOP=1 -f %s postgres", dbAddr, p.port, migration),
			"--ready", fmt.Sprintf("http://127.0.0.1:%d/", httpPort),
			"--", "busybox", "httpd", "-f", "-p", fmt.Sprintf("127.0.0.1:%d", httpPort), "-h", www)
		app.waitLog("probe failed")                         // waiting for the database, which is not there yet
		time.Sleep(time.Until(start0.Add(2 * time.Second))) // the scenario: the database comes 2 s later
		dbStart := time.Now()
		db := startWith(t, pid1, t.TempDir(), config{wrap: []string{"ip", "netns", "exec", dbNS}},
			"--log-format", "json", "--user", "postgres", "--stop-signal", "SIGINT", "--grace", "20s",
			"--", filepath.Join(p.bin, "postgres"), "-D", p.data, "-p", strconv.Itoa(p.port),
			"-c", "listen_addresses="+dbAddr, "-k", p.sock)

		waitFor(t, long, "the app's ready file", func() bool { return exists(readyFile) })
		out, err := exec.Command("ip", "netns", "exec", dbNS, "psql", "-X", "-At", "-h", dbAddr, "-p", strconv.Itoa(p.port),
			"-U", "postgres", "-c", "SELECT count(*), to_char(min(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM migration_runs", "postgres").CombinedOutput()
		if err != nil {
			t.Fatalf("reading the migration's table: %v\n%s", err, out)
		}
		count, at, _ := strings.Cut(strings.TrimSpace(string(out)), "|")
		if count != "1" {
			t.Errorf("the migration ran %s times, want once", count)
		}
		migrated, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			t.Fatalf("migration time %q: %v", at, err)
		}
		var pgPassed logLine
		for _, l := range app.logsWith("probe passed") {
			if strings.HasPrefix(l.str("probe"), "exec:pg_isready") {
				pgPassed = l
			}
		}
		if pgPassed == nil {
			t.Fatal("no probe passed line for pg_isready")
		}
		taskStarted, taskDone, mainStarted := app.mustLog("before task started"), app.mustLog("before task succeeded"), app.mustLog("main started")
		if taskStarted == nil || taskDone == nil || mainStarted == nil {
			t.FailNow()
		}
		t.Logf("db started %s after the app; pg_isready passed %s, migration at %s, main started %s after it",
			dbStart.Sub(start0).Round(time.Millisecond), pgPassed.time().Sub(dbStart).Round(time.Millisecond),
			migrated.Sub(dbStart).Round(time.Millisecond), mainStarted.time().Sub(migrated).Round(time.Millisecond))
		switch {
		case !migrated.After(dbStart):
			t.Errorf("migration at %s, before the database was started at %s", migrated, dbStart)
		case pgPassed.time().After(taskStarted.time()):
			t.Errorf("before task started %s, before pg_isready passed %s", taskStarted.time(), pgPassed.time())
		case taskStarted.time().After(migrated):
			t.Errorf("migration row at %s, before the task started at %s", migrated, taskStarted.time())
		case mainStarted.time().Before(taskDone.time()) || mainStarted.time().Before(migrated):
			t.Errorf("main started %s, before the migration (%s) or its success (%s)", mainStarted.time(), migrated, taskDone.time())
		}
		if state, code := health(t, app, readyFile); state != "ready" || code != 0 {
			t.Errorf("health once main is ready: %q exit %d, want ready exit 0", state, code)
		}
		if n := len(app.logsWith("before task started")); n != 1 {
			t.Errorf("%d before task starts, want 1", n)
		}
		if l := app.mustLog("probe passed"); l != nil && l.str("phase") != "wait-for" {
			t.Errorf("first probe passed in phase %q", l.str("phase"))
		}

		stopAppThenDB(t, app, db)
	})
}
