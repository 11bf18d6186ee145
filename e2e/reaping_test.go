//go:build e2e

package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// orphanStorm is sh code that makes 200 orphans that exit at once: each
// subshell starts a short sleep in the background and exits, so the sleep
// is reparented to mainstay (PID 1, or the subreaper).
const orphanStorm = `i=0
while [ $i -lt 200 ]; do (sleep 0.01 &); i=$((i+1)); done
echo done > "$D/storm.done"
`

// TestOrphanStorm: orphans made by main or by a helper are all reaped: once
// they are gone, no zombie is left whose parent is mainstay.
func TestOrphanStorm(t *testing.T) {
	for _, who := range []string{"main", "helper"} {
		t.Run(who, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				args := []string{"--log-format", "json", "--log-level", "debug"}
				mainBody := `trap 'exit 0' TERM
echo $$ > "$D/main.pid"
`
				if who == "main" {
					mainBody += orphanStorm
				} else {
					args = append(args, "--helper", "sh "+script(t, dir, "helper.sh", orphanStorm))
				}
				main := script(t, dir, "main.sh", mainBody+"while :; do sleep 0.05; done\n")
				r := start(t, m, dir, append(args, "--", "sh", main)...)
				mainp := r.pidFile("main.pid")
				waitLine(t, filepath.Join(dir, "storm.done"))
				r.waitLog("main in the foreground")
				// Main's own children are main's to reap; every other child
				// of mainstay is an orphan, and must be reaped once it exits.
				waitFor(t, long, "mainstay to have no child but main", func() bool {
					kids := children(r.PID())
					return len(kids) == 1 && kids[0].pid == mainp.pid
				})
				for _, k := range children(r.PID()) {
					if k.state == 'Z' {
						t.Errorf("zombie %d left under mainstay", k.pid)
					}
				}
				n := len(r.logsWith("reaped orphan"))
				t.Logf("%d orphans reaped", n)
				if n < 200 {
					t.Errorf("%d orphans reaped, want 200", n)
				}
				r.signal(unix.SIGTERM)
				if got := r.wait(long); got != 0 {
					t.Errorf("exit code %d, want main's 0", got)
				}
			})
		})
	}
}

// TestNoProcessLeftBehind: main leaves a background child and a setsid'd
// daemon and exits; both are gone once mainstay has exited, stopped by
// mainstay's sweep (in pid1 mode, before the kernel would have killed them).
func TestNoProcessLeftBehind(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", `echo $$ > "$D/main.pid"
sleep 1000 &
echo $! > "$D/bg.pid"
setsid sh -c 'echo $$ > "$1/daemon.pid"; exec sleep 1000' daemon "$D" &
while [ ! -e "$D/go" ]; do sleep 0.05; done
exit 0
`)
		r := start(t, m, dir, "--log-format", "json", "--grace", "5s", "--", "sh", main)
		mainp, bg, daemon := r.pidFile("main.pid"), r.pidFile("bg.pid"), r.pidFile("daemon.pid")
		mi, _ := mainp.info()
		if di, _ := daemon.info(); di.session == mi.session || di.pid != di.session {
			t.Fatalf("daemon %+v is not in a session of its own (main's is %d)", di, mi.session)
		}
		touch(t, filepath.Join(dir, "go"))
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0", got)
		}
		mustBeGone(t, "main's background child", bg)
		mustBeGone(t, "main's setsid'd daemon", daemon)
		if l := r.mustLog("stopping leftover processes"); l.num("count") < 2 {
			t.Errorf("logged %v, want count >= 2", l)
		}
	})
}

// TestLeftoverIgnoringTerm: a leftover that ignores SIGTERM is killed once
// --grace has passed.
func TestLeftoverIgnoringTerm(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", stubbornGrandchild+`while [ ! -e "$D/go" ]; do sleep 0.05; done
exit 0
`)
		r := start(t, m, dir, "--log-format", "json", "--grace", "500ms", "--", "sh", main)
		gc := r.pidFile("gc.pid")
		touch(t, filepath.Join(dir, "go"))
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0", got)
		}
		mustBeGone(t, "leftover ignoring SIGTERM", gc)
		stopping := r.mustLog("stopping leftover processes")
		killing := r.mustLog("leftover processes did not exit within grace; killing them")
		// Nobody asked main to stop: the budget runs from its exit (the
		// SIGTERM goes out after that line, but within the budget).
		if d := killing.time().Sub(r.mustLog("main exited").time()); d < 500*time.Millisecond {
			t.Errorf("leftovers killed %s after main exited, before --grace 500ms", d)
		}
		if stopping.num("count") < 1 || killing.num("count") < 1 {
			t.Errorf("logged %v and %v, want count >= 1", stopping, killing)
		}
	})
}
