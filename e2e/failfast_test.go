//go:build e2e

package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// TestMainExitsDuringReadiness: main exits while its probe keeps failing →
// mainstay exits at once with main's code, not after --ready-timeout.
func TestMainExitsDuringReadiness(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		probe := script(t, dir, "probe.sh", "echo tried >> \"$D/probe.ran\"\nexit 1\n")
		main := script(t, dir, "main.sh", `while [ ! -e "$D/probe.ran" ]; do sleep 0.05; done
exit 4
`)
		r := start(t, m, dir, "--log-format", "json", "--ready-timeout", "60s",
			"--ready", "exec:sh "+probe, "--", "sh", main)
		// A mainstay that waited out --ready-timeout would take a minute.
		if got := r.wait(long); got != 4 {
			t.Errorf("exit code %d, want main's 4", got)
		}
		if l := r.mustLog("main exited during start-up"); l.num("exit_code") != 4 {
			t.Errorf("logged %v, want exit_code 4", l)
		}
		r.mustNotLog("ready")
	})
}

// TestMainExitsDuringHelper: main exits while a helper runs → the helper's
// whole process group is killed at once (a grandchild that ignores SIGTERM
// too, so it is not left to the sweep), and the exit code is main's.
func TestMainExitsDuringHelper(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		h := "sh " + script(t, dir, "helper.sh", stubbornGrandchild+`trap '' TERM
while [ ! -e "$D/gc.pid" ]; do sleep 0.05; done
echo $$ > "$D/helper.pid"
while :; do sleep 0.05; done
`)
		main := script(t, dir, "main.sh", `while [ ! -e "$D/go" ]; do sleep 0.05; done
exit 6
`)
		r := start(t, m, dir, "--log-format", "json", "--grace", "60s", "--helper", h, "--", "sh", main)
		helper, gc := r.pidFile("helper.pid"), r.pidFile("gc.pid")
		touch(t, filepath.Join(dir, "go"))
		began := time.Now()
		// With --grace 60s, a grandchild left to the sweep would hold mainstay up for a minute.
		if got := r.wait(long); got != 6 {
			t.Errorf("exit code %d, want main's 6", got)
		}
		t.Logf("mainstay exited %s after main was told to exit", r.endedAt().Sub(began).Round(time.Millisecond))
		mustBeGone(t, "helper", helper)
		mustBeGone(t, "helper's grandchild", gc)
		r.mustNotLog("helper succeeded")
	})
}
