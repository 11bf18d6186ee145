//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mainstay-dev/mainstay/reaper/reapertest"
	"golang.org/x/sys/unix"
)

// Programs that daemonize themselves: pidfile= sidecars.

// daemonPID is the PID of the named sidecar's n-th adopted daemon (from
// 1), from its "daemon adopted" line, as the test sees it.
func (r *run) daemonPID(name string, n int) procRef {
	r.t.Helper()
	var pids []int
	waitFor(r.t, long, fmt.Sprintf("daemon #%d of %s adopted", n, name), func() bool {
		pids = pids[:0]
		for _, l := range r.logsWith("daemon adopted") {
			if l.str("sidecar") == name {
				pids = append(pids, l.num("pid"))
			}
		}
		return len(pids) >= n
	})
	return r.hostPID(pids[n-1])
}

// daemonDir is a directory the daemon's user (nobody) may write its
// pidfile in.
func daemonDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(reapertest.PublicDir(t), "run")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDaemonMemcached: memcached -d -P as a pidfile= sidecar run as
// nobody: its daemon is adopted and serves; killed with SIGKILL, it is
// restarted by its policy, a new daemon with a new PID serves, logged;
// SIGTERM stops main, then the daemon, with exit code 0 and nothing left.
func TestDaemonMemcached(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir, run := t.TempDir(), daemonDir(t)
		port := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		pidfile := filepath.Join(run, "memcached.pid")
		r := start(t, m, dir, "--log-format", "json",
			"--sidecar", fmt.Sprintf("name=cache user=nobody pidfile=%s ready=tcp:%s -- memcached -d -P %s -l 127.0.0.1 -p %d", pidfile, addr, pidfile, port),
			"--", serverMain(t, dir, 0))
		r.waitLog("main in the foreground")
		first := r.daemonPID("cache", 1)
		if got, err := memcachedVersion(addr); err != nil || !strings.HasPrefix(got, "VERSION ") {
			t.Fatalf("memcached: %q, %v", got, err)
		}
		if l := r.mustLog("sidecar started"); l != nil && r.mustLog("daemon adopted").num("pid") == l.num("pid") {
			t.Errorf("the daemon adopted is the start command (pid %d)", l.num("pid"))
		}
		if info, _ := first.info(); info.ppid != r.PID() {
			t.Errorf("the daemon's parent is %d, not mainstay (%d)", info.ppid, r.PID())
		}

		if err := unix.Kill(first.pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		second := r.daemonPID("cache", 2)
		waitFor(t, long, "the new memcached serving", func() bool {
			got, err := memcachedVersion(addr)
			return err == nil && strings.HasPrefix(got, "VERSION ")
		})
		mustBeGone(t, "the killed daemon", first)
		restart := r.mustLog("sidecar exited; restarting")
		if restart.str("status") != "killed by SIGKILL" || restart.str("sidecar") != "cache" {
			t.Errorf("restart line %v, want the daemon killed by SIGKILL", restart)
		}
		if second.pid == first.pid {
			t.Errorf("the same PID %d after the restart", first.pid)
		}

		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
		mustBeGone(t, "the second daemon", second)
		stopped := r.mustLog("sidecar stopped")
		if stopped != nil && stopped.num("exit_code") != 0 {
			t.Errorf("stop line %v, want memcached's own exit 0 on SIGTERM", stopped)
		}
		r.mustNotLog("sidecar did not exit within grace; killing it")
		r.mustNotLog("sidecar ended within a second of its start: a program that forks into the background (daemonizes) looks like that; run it in the foreground (its option for that, such as -F, -D FOREGROUND or --nodaemon), or give the sidecar pidfile=")
		if _, err := os.Stat(pidfile); err == nil {
			// memcached removes its own pidfile on a clean exit.
			t.Errorf("%s left behind", pidfile)
		}
	})
}

// TestDaemonRedis: redis-server --daemonize yes, the daemon adopted as
// root's; killed with SIGKILL, a new one is adopted and serves; stop ends
// it cleanly (redis's own shutdown line, exit 0).
func TestDaemonRedis(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		port := freePort(t)
		pidfile := filepath.Join(dir, "redis.pid")
		r := start(t, m, dir, "--log-format", "json",
			"--sidecar", fmt.Sprintf("name=redis pidfile=%s ready=tcp:127.0.0.1:%d -- redis-server --daemonize yes --pidfile %s --port %d --bind 127.0.0.1 --save '' --dir %s --logfile %s",
				pidfile, port, pidfile, port, dir, filepath.Join(dir, "redis.log")),
			"--", serverMain(t, dir, 0))
		r.waitLog("main in the foreground")
		first := r.daemonPID("redis", 1)
		ping := func() bool {
			out, _ := exec.Command("redis-cli", "-p", strconv.Itoa(port), "ping").CombinedOutput()
			return strings.TrimSpace(string(out)) == "PONG"
		}
		if !ping() {
			t.Fatal("redis does not answer PING")
		}
		// Killed, the daemon is restarted: a new one, adopted, serves.
		if err := unix.Kill(first.pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		d := r.daemonPID("redis", 2)
		waitFor(t, long, "the new redis answering", ping)
		mustBeGone(t, "the killed redis", first)
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
		mustBeGone(t, "redis", d)
		if l := r.mustLog("sidecar stopped"); l != nil && l.num("exit_code") != 0 {
			t.Errorf("stop line %v, want exit 0", l)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		if !strings.Contains(string(b), "Redis is now ready to exit, bye bye") {
			t.Errorf("no clean shutdown in redis's log:\n%s", b)
		}
	})
}

// TestDaemonPidfile: what a pidfile may hold, and what is believed. A
// refused PID is never signalled; a daemon never adopted fails the start
// (exit status 1) and what the start left in its group is killed and
// named.
func TestDaemonPidfile(t *testing.T) {
	t.Run("written late", func(t *testing.T) {
		eachMode(t, func(t *testing.T, m mode) {
			dir := t.TempDir()
			pidfile := filepath.Join(dir, "p.pid")
			// The writer waits a second after the start command exited.
			starter := script(t, dir, "start.sh", `sleep 1000 & d=$!
(sleep 1; echo $d > "$D/p.pid.tmp"; mv "$D/p.pid.tmp" "$D/p.pid") &
exit 0
`)
			r := start(t, m, dir, "--log-format", "json", "--sidecar", "name=late pidfile="+pidfile+" -- "+starter, "--", serverMain(t, dir, 0))
			r.waitLog("main in the foreground")
			d := r.daemonPID("late", 1)
			if l := r.mustLog("sidecar ready"); l != nil && r.hostPID(l.num("pid")) != d {
				t.Errorf("ready line %v, want the daemon's PID", l)
			}
			r.signal(unix.SIGTERM)
			if got := r.wait(long); got != 0 {
				t.Errorf("exit code %d, want 0", got)
			}
			mustBeGone(t, "the daemon", d)
			if l := r.mustLog("sidecar stopped"); l != nil && l.str("status") != "killed by SIGTERM" {
				t.Errorf("stop line %v, want the sleep killed by its SIGTERM", l)
			}
		})
	})
	t.Run("stale", func(t *testing.T) {
		// A pidfile from an earlier run names a live process; it is removed
		// before the start (the start command checks), and never signalled.
		eachMode(t, func(t *testing.T, m mode) {
			dir := t.TempDir()
			pidfile := filepath.Join(dir, "p.pid")
			other := exec.Command("sleep", "1000")
			if err := other.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Process.Kill(); other.Wait() })
			os.WriteFile(pidfile, []byte(fmt.Sprintln(other.Process.Pid)), 0o644)
			starter := script(t, dir, "start.sh", `[ -e "$D/p.pid" ] && exit 9
sleep 1000 & echo $! > "$D/p.pid"
`)
			r := start(t, m, dir, "--log-format", "json", "--sidecar", "name=stale retries=0 pidfile="+pidfile+" -- "+starter, "--", serverMain(t, dir, 0))
			r.waitLog("main in the foreground")
			d := r.daemonPID("stale", 1)
			r.signal(unix.SIGTERM)
			if got := r.wait(long); got != 0 {
				t.Errorf("exit code %d, want 0", got)
			}
			mustBeGone(t, "the daemon", d)
			if other.ProcessState != nil || unix.Kill(other.Process.Pid, 0) != nil {
				t.Error("the process the stale pidfile named is gone")
			}
		})
	})
	// Refused: each pidfile names a process that must not be adopted; the
	// sidecar (non-essential, restart=no) fails its start after its
	// ready-timeout, and mainstay goes on.
	for _, tc := range []struct {
		name, start, refused string
	}{
		// In its own PID namespace, mainstay does not see the test's
		// process at all.
		{"an unrelated process", `echo "$(cat "$D/other.pid")" > "$D/p.pid"; sleep 1000 & exit 0`, "is not a child of mainstay|does not exist"},
		{"main", `cp "$D/main.pid" "$D/p.pid"; sleep 1000 & exit 0`, "is main, already supervised"},
		{"a root process for a nobody sidecar", "", "runs as uid 0, not 65534"},
		{"not a PID", `echo 'tomcat' > "$D/p.pid"; sleep 1000 & exit 0`, `does not hold a PID: "tomcat"`},
		{"never written", `sleep 1000 & exit 0`, "not written yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := reapertest.PublicDir(t)
				pidfile := filepath.Join(dir, "p.pid")
				other := exec.Command("sleep", "1000")
				if err := other.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { other.Process.Kill(); other.Wait() })
				os.WriteFile(filepath.Join(dir, "other.pid"), []byte(fmt.Sprintln(other.Process.Pid)), 0o644)
				starter := script(t, dir, "start.sh", tc.start)
				user := ""
				if strings.Contains(tc.name, "nobody") {
					// The start command runs as nobody; the sleep it
					// names is root's, planted by a helper's twin.
					user = "user=nobody "
					starter = script(t, dir, "start.sh", `touch "$D/go"
while [ ! -s "$D/root.pid" ]; do sleep 0.01; done
cat "$D/root.pid" > "$D/p.pid"
`)
					os.Chmod(dir, 0o777)
				}
				args := []string{"--log-format", "json", "--ready", "file:" + filepath.Join(dir, "main.pid"),
					"--sidecar", "name=d essential=false restart=no start=after ready-timeout=1s " + user + "pidfile=" + pidfile + " -- " + starter}
				if user != "" {
					// A root process, an unregistered child of mainstay
					// (orphaned) that starts after the start command, for
					// the nobody sidecar's pidfile to name.
					args = append(args, "--sidecar", "name=rootd -- "+script(t, dir, "rootd.sh", `while [ ! -e "$D/go" ]; do sleep 0.01; done
(setsid sleep 1000 & echo $! > "$D/root.pid.tmp"; mv "$D/root.pid.tmp" "$D/root.pid")
exec sleep 1000
`))
				}
				r := start(t, m, dir, append(args, "--", serverMain(t, dir, 0))...)
				r.waitLog("main in the foreground")
				const died = "sidecar's daemon exited before it was adopted: its start failed"
				waitFor(t, long, "the sidecar's failed start", func() bool {
					return len(r.logsWith("sidecar's daemon not adopted: its start failed"))+len(r.logsWith(died)) > 0
				})
				ended := r.waitLog("non-essential sidecar ended; left down")
				if ended.num("exit_code") != 1 {
					t.Errorf("%v, want exit code 1", ended)
				}
				said := func(s string) bool {
					for _, want := range strings.Split(tc.refused, "|") {
						if strings.Contains(s, want) {
							return true
						}
					}
					return false
				}
				if ls := r.logsWith(died); len(ls) > 0 {
					// A PID that no process has, read twice: as the test's
					// own process is to a mainstay in a PID namespace.
					if !said("does not exist") {
						t.Errorf("%v: the start failed as if the daemon had died", ls[0])
					}
				} else if l := r.mustLog("sidecar's daemon not adopted: its start failed"); l != nil && !said(l.str("last")) {
					t.Errorf("%v, want last %q", l, tc.refused)
				}
				if len(r.logsWith(died)) == 0 && (strings.Contains(tc.refused, "uid") || strings.Contains(tc.refused, "main") || strings.Contains(tc.refused, "child")) {
					// A process that exists: refused with a WARN at once.
					if l := r.mustLog("pidfile names a process mainstay does not adopt; still waiting for the daemon's"); l != nil && !said(l.str("refused")) {
						t.Errorf("%v, want refused %q", l, tc.refused)
					}
				}
				if user == "" {
					// What the start command left in its group: killed, named.
					killed := r.waitLog("killing what sidecar d left running: no daemon was adopted")
					if !strings.Contains(killed.str("command"), "sleep 1000") {
						t.Errorf("%v, want the sleep named", killed)
					}
				}
				// Main, the unrelated process, the root sidecar: untouched.
				if unix.Kill(other.Process.Pid, 0) != nil {
					t.Error("the unrelated process was signalled")
				}
				main := r.pidFile("main.pid")
				if !main.alive() {
					t.Error("main is gone")
				}
				if s := readLines(filepath.Join(dir, "main.sigs")); len(s) > 0 {
					t.Errorf("main got signals %v", s)
				}
				if user != "" {
					if !r.hostPID(atoi(t, waitLine(t, filepath.Join(dir, "root.pid")))).alive() {
						t.Error("the root sidecar the pidfile named is gone")
					}
				}
				r.signal(unix.SIGTERM)
				if got := r.wait(long); got != 0 {
					t.Errorf("exit code %d, want 0", got)
				}
			})
		})
	}
	t.Run("daemon dies before adoption", func(t *testing.T) {
		// The pidfile names a process that has exited already: the start
		// fails at once, not after its ready-timeout.
		eachMode(t, func(t *testing.T, m mode) {
			dir := t.TempDir()
			starter := script(t, dir, "start.sh", `(exit 3) & echo $! > "$D/p.pid"; wait; exit 0
`)
			r := start(t, m, dir, "--log-format", "json", "--sidecar", "name=d retries=0 ready-timeout=60s pidfile="+filepath.Join(dir, "p.pid")+" -- "+starter, "--", serverMain(t, dir, 0))
			l := r.waitLog("sidecar's daemon exited before it was adopted: its start failed")
			if got := r.wait(short); got != 1 {
				t.Errorf("exit code %d, want 1 (a failed start)", got)
			}
			if l.str("sidecar") != "d" || l.num("pid") == 0 {
				t.Errorf("%v", l)
			}
			r.mustNotLog("main started")
		})
	})
	t.Run("start command fails", func(t *testing.T) {
		eachMode(t, func(t *testing.T, m mode) {
			dir := t.TempDir()
			starter := script(t, dir, "start.sh", "echo cannot start >&2; exit 3\n")
			r := start(t, m, dir, "--log-format", "json", "--sidecar", "name=d retries=1 pidfile="+filepath.Join(dir, "p.pid")+" -- "+starter, "--", serverMain(t, dir, 0))
			if got := r.wait(long); got != 3 {
				t.Errorf("exit code %d, want the start command's 3", got)
			}
			if n := len(r.logsWith("sidecar's start command failed")); n != 2 {
				t.Errorf("%d failed starts logged, want 2 (retries=1)", n)
			}
			r.mustNotLog("main started")
		})
	})
}

func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return n
}

// TestSidecarQuickExit: a sidecar without pidfile= that forks into the
// background and exits at once gets the WARN that names both cures, and
// what it left in its process group is killed and named.
func TestSidecarQuickExit(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		r := start(t, m, dir, "--log-format", "json", "--sidecar", "name=bg essential=false restart=no -- sh -c 'sleep 1000 & exit 0'", "--", serverMain(t, dir, 0))
		warn := r.waitLog("sidecar ended within a second of its start: a program that forks into the background (daemonizes) looks like that; run it in the foreground (its option for that, such as -F, -D FOREGROUND or --nodaemon), or give the sidecar pidfile=")
		if warn.str("level") != "WARN" || warn.str("sidecar") != "bg" || warn.num("exit_code") != 0 {
			t.Errorf("%v, want a WARN for bg with its exit code", warn)
		}
		// Named as it is when killed: "sleep 1000", or, caught between its
		// fork and its exec, still as the sh that forked it.
		killed := r.waitLog("killing what sidecar bg left in its process group")
		if !strings.Contains(killed.str("command"), "sleep 1000") {
			t.Errorf("%v, want the sleep named", killed)
		}
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
	})
}

// TestSidecarEnvDir: env= (repeatable, a later value of a key winning)
// and dir= reach the sidecar alone; main sees neither.
func TestSidecarEnvDir(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		work := filepath.Join(dir, "work")
		os.Mkdir(work, 0o755)
		out := filepath.Join(dir, "side.out")
		r := start(t, m, dir, "--log-format", "json",
			"--sidecar", `name=side env=CATALINA_BASE=/a env=CATALINA_BASE=/b "env=GREETING=hello world" dir=`+work+` -- sh -c 'echo "$CATALINA_BASE|$GREETING|$(pwd)" > `+out+`; exec sleep 1000'`,
			"--", "sh", "-c", `echo "${CATALINA_BASE-unset}|$(pwd)" > "$0/main.out"; exec sleep 1000`, dir)
		if got := waitLine(t, out); got != "/b|hello world|"+work {
			t.Errorf("sidecar saw %q, want /b|hello world|%s", got, work)
		}
		r.waitLog("main in the foreground")
		mainOut := waitLine(t, filepath.Join(dir, "main.out"))
		if !strings.HasPrefix(mainOut, "unset|") || strings.HasSuffix(mainOut, "|"+work) {
			t.Errorf("main saw %q: the sidecar's env= or dir= reached it", mainOut)
		}
		r.signal(unix.SIGTERM)
		r.wait(long)
	})
}

// TestSidecarReadyTimeout: a start=before sidecar's ready-timeout= bounds
// its wait instead of --ready-timeout, either way: shorter (mainstay gives
// up on it first) or longer (a slow sidecar gets its time).
func TestSidecarReadyTimeout(t *testing.T) {
	t.Run("shorter", func(t *testing.T) {
		eachMode(t, func(t *testing.T, m mode) {
			dir := t.TempDir()
			r := start(t, m, dir, "--log-format", "json", "--ready-timeout", "60s",
				"--sidecar", "name=slow ready-timeout=300ms ready=file:"+filepath.Join(dir, "never")+" -- sleep 1000",
				"--", serverMain(t, dir, 0))
			if got := r.wait(long); got != 124 {
				t.Errorf("exit code %d, want 124", got)
			}
			if !strings.Contains(r.stderr(), "sidecar slow not ready after 300ms") {
				t.Errorf("no 'not ready after 300ms' in:\n%s", r.stderr())
			}
			r.mustNotLog("main started")
		})
	})
	t.Run("longer", func(t *testing.T) {
		eachMode(t, func(t *testing.T, m mode) {
			dir := t.TempDir()
			ready := filepath.Join(dir, "ready")
			r := start(t, m, dir, "--log-format", "json", "--ready-timeout", "200ms",
				"--sidecar", "name=slow ready-timeout=30s ready=file:"+ready+" -- sh -c 'sleep 1; touch "+ready+"; exec sleep 1000'",
				"--", serverMain(t, dir, 0))
			r.waitLog("main in the foreground")
			if l := r.mustLog("sidecar ready"); l != nil && l.str("sidecar") != "slow" {
				t.Errorf("%v", l)
			}
			r.signal(unix.SIGTERM)
			if got := r.wait(long); got != 0 {
				t.Errorf("exit code %d, want 0", got)
			}
		})
	})
}

// TestControlDaemon: the control socket acts on a pidfile= sidecar's
// daemon: status shows its PID, signal reaches it, restart runs the start
// command again and adopts a new daemon, stop ends it.
func TestControlDaemon(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "control.sock")
		starter := script(t, dir, "start.sh", `sh -c 'trap "echo HUP >> \"$0/sigs\"" HUP; trap "exit 0" TERM; while :; do sleep 0.05; done' "$D" &
echo $! > "$D/d.pid"
`)
		r := start(t, m, dir, "--log-format", "json", "--control-socket", sock,
			"--sidecar", "name=d pidfile="+filepath.Join(dir, "d.pid")+" -- "+starter, "--", serverMain(t, dir, 0))
		r.waitLog("main in the foreground")
		first := r.daemonPID("d", 1)
		adopted := r.logsWith("daemon adopted")[0].num("pid")
		if c := childOf(statusOf(t, sock), "d"); c.PID != adopted || c.State != "running" {
			t.Errorf("status %+v, want the daemon's PID %d, running", c, adopted)
		}
		if _, errOut, code := ctlOut(t, sock, nil, "signal", "HUP", "d"); code != 0 {
			t.Fatalf("signal: exit %d, %q", code, errOut)
		}
		waitContains(t, filepath.Join(dir, "sigs"), "HUP")
		if _, errOut, code := ctlOut(t, sock, nil, "restart", "d"); code != 0 {
			t.Fatalf("restart: exit %d, %q", code, errOut)
		}
		second := r.daemonPID("d", 2)
		mustBeGone(t, "the first daemon", first)
		if c := childOf(statusOf(t, sock), "d"); c.PID != r.logsWith("daemon adopted")[1].num("pid") || c.State != "running" {
			t.Errorf("status after the restart %+v, want the second daemon, running", c)
		}
		if _, errOut, code := ctlOut(t, sock, nil, "stop", "d"); code != 0 {
			t.Fatalf("stop: exit %d, %q", code, errOut)
		}
		mustBeGone(t, "the second daemon", second)
		if c := childOf(statusOf(t, sock), "d"); c.State != "stopped" || c.PID != 0 {
			t.Errorf("status after the stop %+v, want stopped", c)
		}
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
	})
}
