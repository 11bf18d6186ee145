//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
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
