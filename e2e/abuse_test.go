//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// closedPipe returns the write end of a pipe whose read end is already
// closed: every write to it fails with EPIPE (and raises SIGPIPE), as a
// log collector that went away, or "mainstay ... | true", leaves it.
func closedPipe(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() { w.Close() })
	return w
}

// TestClosedOutput: mainstay's stdout or stderr is a pipe nobody reads.
// Its own log lines, a helper's prefixed output and main's output copied
// for a log probe all fail to be written; mainstay keeps supervising
// (without the fix the Go runtime killed it with SIGPIPE: exit 141 with
// main orphaned, or as PID 1 exit 2 and main SIGKILLed) and exits with
// main's code once main has done its work.
func TestClosedOutput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stdout bool // else stderr is closed
		ready  string
	}{
		{"stdout", true, ""},
		{"stderr", false, ""},
		{"stdout-log-probe", true, "log:^up$"},
		{"stderr-log-probe", false, "log:^up$"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				// Main writes plenty once the helper has run: more than a
				// pipe holds, so a copy that stopped draining would block it.
				// Without a log probe main inherits the closed pipe itself,
				// and would die of it: its output goes to a file then.
				main := script(t, dir, "main.sh", `[ -n "$LOUD" ] || exec >"$D/main.out" 2>&1
echo up; echo up >&2
while [ ! -e "$D/helped" ]; do sleep 0.01; done
i=0; while [ $i -lt 2000 ]; do echo "line $i of main's output, long enough to fill a pipe"; echo "err $i" >&2; i=$((i+1)); done
touch "$D/main.done"
exit 3
`)
				helper := script(t, dir, "helper.sh", `i=0; while [ $i -lt 2000 ]; do echo "helper line $i"; echo "helper err $i" >&2; i=$((i+1)); done
touch "$D/helped"
`)
				cfg := config{}
				if tc.ready != "" {
					cfg.env = []string{"LOUD=1"}
				}
				if tc.stdout {
					cfg.stdout = closedPipe(t)
				} else {
					cfg.stderr = closedPipe(t)
				}
				args := []string{"--log-level", "debug", "--helper", "sh " + helper}
				if tc.ready != "" {
					args = append(args, "--ready", tc.ready)
				}
				r := startWith(t, m, dir, cfg, append(args, "--", "sh", main)...)
				if got := r.wait(long); got != 3 {
					t.Errorf("exit code %d, want main's 3", got)
				}
				if !exists(filepath.Join(dir, "main.done")) {
					t.Error("main did not finish its work")
				}
			})
		})
	}
}

// TestStopStoppedMain: main stopped by SIGSTOP (as Ctrl-Z or SIGTTIN
// leave it), then docker stop's SIGTERM: main gets the stop signal and
// SIGCONT, its handler runs, and mainstay exits with its code at once,
// not after the grace with SIGKILL.
func TestStopStoppedMain(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := serverMain(t, dir, 0)
		args := append([]string{"--log-format", "json", "--grace", "60s"}, mainReady(dir)...)
		r := start(t, m, dir, append(args, "--", "sh", main)...)
		mp := r.pidFile("main.pid")
		r.waitLog("main in the foreground")
		if err := unix.Kill(mp.pid, unix.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, short, "main stopped", func() bool { q, ok := mp.info(); return ok && q.state == 'T' })
		r.signal(unix.SIGTERM)
		// With --grace 60s only main's own handler ends it within long.
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0 from its TERM handler", got)
		}
		if got := lines(filepath.Join(dir, "main.sigs")); len(got) != 1 || got[0] != "TERM" {
			t.Errorf("main got signals %q, want [TERM]", got)
		}
	})
}

// TestStopBudget: --grace is one budget for the whole stop. Main ignores
// SIGTERM and leaves a child that ignores it too: main is killed when the
// budget ends, and the leftover at once after (no second grace), so the
// stop takes about --grace, not twice it.
func TestStopBudget(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", stubbornGrandchild+`trap '' TERM
echo $$ > "$D/main.pid"
while :; do sleep 0.05; done
`)
		const grace = 2 * time.Second
		r := start(t, m, dir, "--log-format", "json", "--grace", grace.String(),
			"--ready", "file:"+filepath.Join(dir, "gc.pid"), "--", "sh", main)
		gc := r.pidFile("gc.pid")
		r.waitLog("main in the foreground")
		sent := time.Now()
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 137 {
			t.Errorf("exit code %d, want 137 (main killed by SIGKILL)", got)
		}
		took := r.endedAt().Sub(sent)
		if took < grace || took > grace+1500*time.Millisecond {
			t.Errorf("stop took %s, want about --grace %s (SIGKILL at its end, then under a second)", took, grace)
		}
		mustBeGone(t, "main's stubborn child", gc)
		r.mustLog("main did not exit within grace; killing it")
		r.mustLog("no grace left for leftover processes; killing them")
		r.mustNotLog("stopping leftover processes")
	})
}

// TestLeftoversGetRestOfBudget: main exits at once on SIGTERM, its child
// ignores SIGTERM: the child gets what is left of the budget, then SIGKILL.
func TestLeftoversGetRestOfBudget(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", stubbornGrandchild+`trap 'exit 5' TERM
echo $$ > "$D/main.pid"
while :; do sleep 0.05; done
`)
		const grace = 2 * time.Second
		r := start(t, m, dir, "--log-format", "json", "--grace", grace.String(),
			"--ready", "file:"+filepath.Join(dir, "gc.pid"), "--", "sh", main)
		gc := r.pidFile("gc.pid")
		r.waitLog("main in the foreground")
		sent := time.Now()
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 5 {
			t.Errorf("exit code %d, want main's 5", got)
		}
		took := r.endedAt().Sub(sent)
		if took < grace || took > grace+1500*time.Millisecond {
			t.Errorf("stop took %s, want about --grace %s", took, grace)
		}
		mustBeGone(t, "main's stubborn child", gc)
		if l := r.mustLog("stopping leftover processes"); l.str("grace") == grace.String() || l.str("grace") == "" {
			t.Errorf("leftovers got %q, want the rest of the %s budget", l.str("grace"), grace)
		}
		r.mustLog("leftover processes did not exit within grace; killing them")
	})
}

// TestInheritedIgnore: a signal ignored when mainstay starts (trap "" in a
// shell, nohup) stays ignored for main, as with a plain exec or tini: main
// sends itself SIGHUP and SIGINT and lives on. Without the fix, mainstay's
// subscription un-ignored them and main died of SIGHUP (129).
func TestInheritedIgnore(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", `kill -HUP $$; kill -INT $$; echo ok > "$D/ok"; exit 4
`)
		r := startWith(t, m, dir, config{wrap: []string{"sh", "-c", `trap "" HUP INT; exec "$@"`, "sh"}},
			"--log-format", "json", "--", "sh", main)
		if got := r.wait(long); got != 4 {
			t.Errorf("exit code %d, want main's 4 (main lived on)", got)
		}
		if got := lines(filepath.Join(dir, "ok")); len(got) != 1 {
			t.Error("main did not survive its own SIGHUP and SIGINT")
		}
		var got []string
		for _, l := range r.logsWith("signal ignored when mainstay started: left ignored, for main and every child too") {
			got = append(got, l.str("signal"))
		}
		if len(got) != 2 || got[0] != "SIGHUP" || got[1] != "SIGINT" {
			t.Errorf("logged inherited signals %q, want [SIGHUP SIGINT]", got)
		}
	})
}

// TestStuckInKernel: a process that SIGKILL cannot end (frozen by the
// cgroup freezer, which shows as D state, as a process in a hung NFS call
// does) must not keep mainstay from finishing: it gives up
// reaper.KillWait (1 s) after the SIGKILL, says so, and exits with main's
// code. As PID 1 its exit itself then waits in the kernel, which ends a
// PID namespace only once every process in it is gone; the test thaws the
// process after the give-up to see the code.
func TestStuckInKernel(t *testing.T) {
	const grace, killWait = time.Second, time.Second
	// stuck runs main (a script that writes the PID to freeze to
	// $D/stuck.pid, then exits 5 on SIGTERM), freezes that process, sends
	// mainstay SIGTERM, and returns mainstay's exit code once it has logged
	// giveUp: at once when it is not PID 1, after thawing the process when
	// it is. It also returns the run and when SIGTERM was sent.
	stuck := func(t *testing.T, m mode, who, giveUp string) (int, *run, time.Time) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", who+` > "$D/stuck.tmp"; mv "$D/stuck.tmp" "$D/stuck.pid"
trap 'exit 5' TERM
while :; do sleep 0.05; done
`)
		r := start(t, m, dir, "--log-format", "json", "--grace", grace.String(),
			"--ready", "file:"+filepath.Join(dir, "stuck.pid"), "--", "sh", main)
		p := r.pidFile("stuck.pid")
		r.waitLog("main in the foreground")
		thaw := freeze(t, p.pid)
		sent := time.Now()
		r.signal(unix.SIGTERM)
		r.waitLog(giveUp)
		if m.pid1 {
			thaw()
		}
		return r.wait(long), r, sent
	}
	eachMode(t, func(t *testing.T, m mode) {
		t.Run("leftover", func(t *testing.T) {
			const giveUp = "processes still there after SIGKILL (stuck in the kernel, D state?); giving up on them"
			code, r, sent := stuck(t, m, "sleep 1000 & echo $!", giveUp)
			if code != 5 {
				t.Errorf("exit code %d, want main's 5", code)
			}
			l := r.mustLog(giveUp)
			if took := l.time().Sub(sent); took < grace+killWait {
				t.Errorf("gave up %s after SIGTERM, before --grace %s and the %s after SIGKILL had passed", took, grace, killWait)
			}
			if n := l.num("count"); n != 1 {
				t.Errorf("gave up on %d processes, want 1", n)
			}
			r.mustLog("leftover processes did not exit within grace; killing them")
		})
		t.Run("main", func(t *testing.T) {
			code, r, _ := stuck(t, m, "echo $$", "main still there after SIGKILL (stuck in the kernel, D state?); giving up on it")
			if code != 137 {
				t.Errorf("exit code %d, want 137: main was sent SIGKILL", code)
			}
			r.mustLog("main did not exit within grace; killing it")
			if l := r.mustLog("main exited"); l.num("exit_code") != 137 {
				t.Errorf("main exited with exit_code %d, want 137", l.num("exit_code"))
			}
		})
	})
}

// freeze puts pid into a cgroup v1 freezer group of its own and freezes
// it: the process then sleeps in the kernel (state D) and stays alive
// through SIGKILL until it is thawed. The returned thaw thaws it (once);
// at the test's end it is thawed, killed and the group removed.
func freeze(t *testing.T, pid int) (thaw func()) {
	t.Helper()
	root := "/sys/fs/cgroup/freezer"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		t.Fatalf("this test needs the cgroup v1 freezer at %s (as on this project's machines): %v", root, err)
	}
	g, err := os.MkdirTemp(root, "mainstay-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, v string) error { return os.WriteFile(filepath.Join(g, file), []byte(v), 0o644) }
	var once sync.Once
	thaw = func() {
		once.Do(func() {
			if err := write("freezer.state", "THAWED"); err != nil {
				t.Errorf("thaw: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		thaw()
		_ = unix.Kill(pid, unix.SIGKILL)
		waitFor(t, short, "the thawed process to leave its freezer group", func() bool {
			b, _ := os.ReadFile(filepath.Join(g, "cgroup.procs"))
			return len(strings.TrimSpace(string(b))) == 0
		})
		if err := os.Remove(g); err != nil {
			t.Errorf("remove freezer group: %v", err)
		}
	})
	if err := write("cgroup.procs", strconv.Itoa(pid)); err != nil {
		t.Fatal(err)
	}
	if err := write("freezer.state", "FROZEN"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, short, "the freezer group to be frozen", func() bool {
		b, _ := os.ReadFile(filepath.Join(g, "freezer.state"))
		return strings.TrimSpace(string(b)) == "FROZEN"
	})
	return thaw
}
