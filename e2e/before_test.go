//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"path/filepath"
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
