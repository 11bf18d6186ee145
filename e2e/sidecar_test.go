//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// apacheMain writes a minimal apache2 configuration serving dir/www on
// 127.0.0.1:port and returns main's command line for it (the book's
// Apache, in the foreground).
func apacheMain(t *testing.T, dir string, port int) []string {
	t.Helper()
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("served by apache\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		os.Chmod(d, 0o755) // www-data must reach the document root
	}
	conf := filepath.Join(dir, "httpd.conf")
	body := fmt.Sprintf(`ServerRoot %[1]s
Listen 127.0.0.1:%[2]d
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
PidFile %[1]s/apache.pid
Mutex file:%[1]s default
ErrorLog /dev/stderr
DocumentRoot %[3]s
ServerName localhost
User www-data
Group www-data
`, dir, port, www)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"/usr/sbin/apache2", "-f", conf, "-D", "FOREGROUND"}
}

// memcachedVersion asks the memcached at addr for its version.
func memcachedVersion(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "version\r\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// sidecarRuns counts the runs logged for the named sidecar.
func (r *run) sidecarRuns(name string) int {
	n := 0
	for _, l := range r.logsWith("sidecar started") {
		if l.str("sidecar") == name {
			n++
		}
	}
	return n
}

// sidecarPID is the named sidecar's latest run, as the test sees it.
func (r *run) sidecarPID(name string) procRef {
	r.t.Helper()
	pid := 0
	for _, l := range r.logsWith("sidecar started") {
		if l.str("sidecar") == name {
			pid = l.num("pid")
		}
	}
	return r.hostPID(pid)
}

// TestSidecarSupervisord: the supervisord pattern of Docker's page, one
// line: apache2 as main, memcached as an essential sidecar gated on its
// port, cron as a non-essential one. Killing memcached restarts it (a new
// PID that serves), with delays that grow; SIGTERM stops main, then the
// sidecars in reverse order, and leaves nothing.
func TestSidecarSupervisord(t *testing.T) {
	cronRunning := exec.Command("pgrep", "-x", "cron").Run() == nil
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if m.pid1 && unshareErr != nil {
				t.Fatalf("PID 1 mode needs a new PID namespace: %v", unshareErr)
			}
			// Not parallel: cron keeps one pid file per machine.
			dir := t.TempDir()
			webPort, cachePort := freePort(t), freePort(t)
			cache := fmt.Sprintf("127.0.0.1:%d", cachePort)
			args := []string{"--log-format", "json", "--ready", fmt.Sprintf("http://127.0.0.1:%d/index.html", webPort),
				"--ready-file", filepath.Join(dir, "ready"),
				"--sidecar", fmt.Sprintf("name=cache ready=tcp:%s -- memcached -u nobody -l 127.0.0.1 -p %d", cache, cachePort)}
			if !cronRunning {
				args = append(args, "--sidecar", "essential=false -- cron -f")
			}
			args = append(append(args, "--"), apacheMain(t, dir, webPort)...)
			r := start(t, m, dir, args...)
			r.waitLog("main in the foreground")
			if got, err := memcachedVersion(cache); err != nil || !strings.HasPrefix(got, "VERSION ") {
				t.Fatalf("memcached: %q, %v", got, err)
			}
			mustServe(t, webPort)
			if got := healthOf(t, r, filepath.Join(dir, "ready")); got != "ready" {
				t.Errorf("health %q, want ready", got)
			}

			// Kill memcached three times: each time a new PID serves.
			for i := 1; i <= 3; i++ {
				old := r.sidecarPID("cache")
				if err := unix.Kill(old.pid, unix.SIGKILL); err != nil {
					t.Fatal(err)
				}
				waitFor(t, long, "memcached restarted", func() bool { return r.sidecarRuns("cache") > i })
				waitFor(t, long, "the new memcached serving", func() bool {
					got, err := memcachedVersion(cache)
					return err == nil && strings.HasPrefix(got, "VERSION ")
				})
				mustBeGone(t, "the killed memcached", old)
			}
			var delays []time.Duration
			for _, l := range r.logsWith("sidecar exited; restarting") {
				d, err := time.ParseDuration(l.str("delay"))
				if err != nil || l.str("sidecar") != "cache" {
					t.Fatalf("restart line %v", l)
				}
				delays = append(delays, d)
				if l.num("restart") != len(delays) {
					t.Errorf("restart line %v, want restart %d", l, len(delays))
				}
			}
			// 100ms doubling, ±20 %: 80–120, 160–240, 320–480 ms.
			if len(delays) != 3 || !(delays[0] < delays[1] && delays[1] < delays[2]) || delays[0] < 80*time.Millisecond || delays[2] > 480*time.Millisecond {
				t.Errorf("restart delays %v, want three growing ones from 100ms, doubling", delays)
			}

			last := r.sidecarPID("cache")
			r.signal(unix.SIGTERM)
			if got := r.wait(long); got != 0 {
				t.Errorf("exit code %d, want apache2's 0", got)
			}
			order := r.stopOrder()
			want := []string{"main", "cache"}
			if !cronRunning {
				want = []string{"main", "cron", "cache"}
			}
			if !slices.Equal(order, want) {
				t.Errorf("stop order %v, want %v", order, want)
			}
			mustBeGone(t, "memcached", last)
		})
	}
}

// stopOrder is the order of the stop, from mainstay's log: "main" when
// main exited, then each sidecar's name as it was asked to stop.
func (r *run) stopOrder() []string {
	var order []string
	for _, l := range r.logs() {
		switch l.str("msg") {
		case "main exited":
			order = append(order, "main")
		case "stopping sidecar":
			order = append(order, l.str("sidecar"))
		}
	}
	return order
}

// mustServe checks that apache answers on port.
func mustServe(t *testing.T, port int) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", port)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "served by apache\n" {
		t.Errorf("GET %s: %q", url, b)
	}
}

// healthOf runs "mainstay health" for the ready file at path inside
// mainstay's namespaces, as a HEALTHCHECK does: the state file names
// mainstay by its PID there.
func healthOf(t *testing.T, r *run, path string) string {
	t.Helper()
	out, _ := health(t, r, path)
	return out
}

// TestSidecarWaitN: the "wait -n" pattern of Docker's page, one line:
// whichever of the two exits first ends the container with its code; the
// other gets its stop signal (not SIGKILL) and nothing is left.
func TestSidecarWaitN(t *testing.T) {
	for _, first := range []string{"main", "sidecar"} {
		t.Run(first+" first", func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				// Each process exits with its code once $D/<name>.go exists,
				// and records the signals it gets.
				proc := func(name string, code int) string {
					return script(t, dir, name+".sh", fmt.Sprintf(`trap 'echo TERM >> "$D/%[1]s.sigs"; exit 0' TERM
echo $$ > "$D/%[1]s.pid"
while [ ! -e "$D/%[1]s.go" ]; do sleep 0.02; done
exit %[2]d
`, name, code))
				}
				r := start(t, m, dir, "--log-format", "json",
					"--sidecar", "restart=no -- sh "+proc("second", 4),
					"--ready", "file:"+filepath.Join(dir, "second.pid"), "--", "sh", proc("first", 5))
				p1, p2 := r.pidFile("first.pid"), r.pidFile("second.pid")
				r.waitLog("main in the foreground")
				want, other, otherName := 5, p2, "second"
				if first == "sidecar" {
					want, other, otherName = 4, p1, "first"
					touch(t, filepath.Join(dir, "second.go"))
				} else {
					touch(t, filepath.Join(dir, "first.go"))
				}
				if got := r.wait(long); got != want {
					t.Errorf("exit code %d, want %d (the code of the one that exited first)", got, want)
				}
				if got := lines(filepath.Join(dir, otherName+".sigs")); !slices.Equal(got, []string{"TERM"}) {
					t.Errorf("%s got signals %q, want [TERM]", otherName, got)
				}
				mustBeGone(t, otherName, other)
				if first == "sidecar" {
					if l := r.mustLog("sidecar exited; stopping"); l.num("exit_code") != 4 || l.str("sidecar") != "sh" {
						t.Errorf("logged %v, want sidecar sh, exit_code 4", l)
					}
				}
			})
		})
	}
}

// TestSidecarGivesUpForGood: memcached with a bad flag fails for good:
// after its retries, main is stopped cleanly (its stop signal, not
// SIGKILL) and mainstay exits with memcached's code.
func TestSidecarGivesUpForGood(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := serverMain(t, dir, 0)
		r := start(t, m, dir, "--log-format", "json", "--restart-delay", "10ms",
			"--sidecar", "name=cache start=after retries=2 -- memcached --no-such-flag",
			"--ready", "file:"+filepath.Join(dir, "main.pid"), "--", "sh", main)
		if got := r.wait(long); got != 1 {
			t.Errorf("exit code %d, want memcached's 1", got)
		}
		if got := lines(filepath.Join(dir, "main.sigs")); !slices.Equal(got, []string{"TERM"}) {
			t.Errorf("main got signals %q, want [TERM]", got)
		}
		if n := r.sidecarRuns("cache"); n != 3 {
			t.Errorf("%d runs, want 3 (2 retries)", n)
		}
		if l := r.mustLog("sidecar gave up; stopping"); l.num("exit_code") != 1 || l.num("restart") != 2 {
			t.Errorf("logged %v, want exit_code 1 after 2 restarts", l)
		}
	})
}

// TestSidecarStopOrderAndBudget: main and two sidecars that each take
// 300ms to stop are stopped in order — main, then the sidecars in reverse
// start order — all within the one --grace; and when all three ignore
// SIGTERM, the whole stop still ends at --grace, not three times it.
func TestSidecarStopOrderAndBudget(t *testing.T) {
	for _, stubborn := range []bool{false, true} {
		t.Run(fmt.Sprint("stubborn=", stubborn), func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				trap := `trap 'sleep 0.3; exit 0' TERM`
				if stubborn {
					trap = `trap '' TERM`
				}
				proc := func(name string) string {
					return "sh " + script(t, dir, name+".sh", trap+"\necho $$ > \"$D/"+name+".pid\"\nwhile :; do sleep 0.02; done\n")
				}
				const grace = 2 * time.Second
				r := start(t, m, dir, "--log-format", "json", "--grace", grace.String(),
					"--sidecar", "name=one ready=file:"+filepath.Join(dir, "one.pid")+" -- "+proc("one"),
					"--sidecar", "name=two ready=file:"+filepath.Join(dir, "two.pid")+" -- "+proc("two"),
					"--ready", "file:"+filepath.Join(dir, "main.pid"), "--main", proc("main"))
				r.waitLog("main in the foreground")
				pids := []procRef{r.pidFile("main.pid"), r.pidFile("one.pid"), r.pidFile("two.pid")}
				sent := time.Now()
				r.signal(unix.SIGTERM)
				want := 0
				if stubborn {
					want = 137
				}
				if got := r.wait(long); got != want {
					t.Errorf("exit code %d, want %d", got, want)
				}
				took := r.endedAt().Sub(sent)
				if took > grace+1500*time.Millisecond || (stubborn && took < grace) {
					t.Errorf("stop took %s, want within --grace %s (+ under a second)", took, grace)
				}
				order := r.stopOrder()
				if !stubborn && !slices.Equal(order, []string{"main", "two", "one"}) {
					t.Errorf("stop order %v, want [main two one]", order)
				}
				for _, p := range pids {
					mustBeGone(t, "a stopped process", p)
				}
			})
		})
	}
}

// TestSidecarBeforeNotReady: a start=before sidecar that never becomes
// ready: main is never started, exit 124, the sidecar is stopped.
func TestSidecarBeforeNotReady(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		r := start(t, m, dir, "--log-format", "json", "--ready-timeout", "300ms",
			"--sidecar", "name=never ready=file:"+filepath.Join(dir, "never")+" -- sleep 1000",
			"--", "sh", "-c", "touch "+filepath.Join(dir, "main.ran"))
		if got := r.wait(long); got != 124 {
			t.Errorf("exit code %d, want 124", got)
		}
		if exists(filepath.Join(dir, "main.ran")) {
			t.Error("main was started")
		}
		r.mustLog("sidecar not ready in time; main not started")
		r.mustLog("stopping sidecar")
	})
}

// TestSidecarHealthRestarting: while an essential sidecar restarts,
// health says restarting (exit 1); once it is back and ready, ready.
func TestSidecarHealthRestarting(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		ready := filepath.Join(dir, "ready")
		sc := "sh " + script(t, dir, "sc.sh", `n=$(($(cat "$D/n" 2>/dev/null || echo 0) + 1)); echo $n > "$D/n"
[ $n -eq 1 ] && { echo $$ > "$D/sc.pid"; touch "$D/sc.up"; exec sleep 1000; }
while [ ! -e "$D/back" ]; do sleep 0.02; done
touch "$D/sc.up.$n"; exec sleep 1000
`)
		r := start(t, m, dir, "--log-format", "json", "--ready-file", ready, "--restart-delay", "10ms",
			"--sidecar", "name=sc ready=file:"+filepath.Join(dir, "sc.up")+" -- "+sc,
			"--", "sh", serverMain(t, dir, 0))
		r.waitLog("ready file written")
		if got := healthOf(t, r, ready); got != "ready" {
			t.Fatalf("health %q, want ready", got)
		}
		os.Remove(filepath.Join(dir, "sc.up"))
		p := r.pidFile("sc.pid")
		unix.Kill(p.pid, unix.SIGKILL)
		waitFor(t, short, "health restarting", func() bool { return healthOf(t, r, ready) == "restarting" })
		touch(t, filepath.Join(dir, "back"))
		// Its probe is file:sc.up, which the second run does not make.
		touch(t, filepath.Join(dir, "sc.up"))
		waitFor(t, short, "health ready again", func() bool { return healthOf(t, r, ready) == "ready" })
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0", got)
		}
	})
}
