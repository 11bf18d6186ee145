//go:build e2e

package e2e

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTermDuringReadiness: SIGTERM while an exec probe runs → the probe is
// killed (it ignores SIGTERM and its attempt may last a minute, so only a
// kill ends it in time), main gets the stop signal, mainstay exits with
// main's code.
func TestTermDuringReadiness(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := serverMain(t, dir, 9)
		probe := script(t, dir, "probe.sh", `trap '' TERM
echo $$ > "$D/probe.pid"
while :; do sleep 0.05; done
`)
		r := start(t, m, dir, "--log-format", "json", "--grace", "60s", "--ready-timeout", "60s",
			"--ready-attempt-timeout", "60s", "--ready", "exec:sh "+probe, "--", "sh", main)
		r.pidFile("main.pid")
		pr := r.pidFile("probe.pid")
		r.signal(unix.SIGTERM)
		// With --grace 60s and --ready-attempt-timeout 60s, a probe left
		// running would hold mainstay up for a minute.
		if got := r.wait(long); got != 9 {
			t.Errorf("exit code %d, want main's 9", got)
		}
		if got := lines(filepath.Join(dir, "main.sigs")); !slices.Equal(got, []string{"TERM"}) {
			t.Errorf("main got signals %q, want [TERM]", got)
		}
		mustBeGone(t, "exec probe", pr)
		if l := r.mustLog("signal received during start-up: aborting"); l.str("signal") != "SIGTERM" {
			t.Errorf("logged %v, want signal SIGTERM", l)
		}
		r.mustNotLog("ready")
	})
}

// TestTermDuringHelper: SIGTERM while a helper runs → the helper's process
// group is killed (a grandchild that ignores SIGTERM too), main gets the
// stop signal, mainstay exits with main's code.
func TestTermDuringHelper(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := serverMain(t, dir, 10)
		h := "sh " + script(t, dir, "helper.sh", stubbornGrandchild+`trap '' TERM
echo $$ > "$D/helper.pid"
while :; do sleep 0.05; done
`)
		h2 := "sh " + script(t, dir, "h2.sh", "touch \"$D/h2.ran\"\n")
		args := append([]string{"--log-format", "json", "--grace", "60s", "--helper", h, "--helper", h2}, mainReady(dir)...)
		r := start(t, m, dir, append(args, "--", "sh", main)...)
		helper, gc := r.pidFile("helper.pid"), r.pidFile("gc.pid")
		r.signal(unix.SIGTERM)
		// With --grace 60s, a grandchild left to the sweep would hold mainstay up for a minute.
		if got := r.wait(long); got != 10 {
			t.Errorf("exit code %d, want main's 10", got)
		}
		if got := lines(filepath.Join(dir, "main.sigs")); !slices.Equal(got, []string{"TERM"}) {
			t.Errorf("main got signals %q, want [TERM]", got)
		}
		mustBeGone(t, "helper", helper)
		mustBeGone(t, "helper's grandchild", gc)
		if exists(filepath.Join(dir, "h2.ran")) {
			t.Error("the next helper ran after start-up was aborted")
		}
	})
}

// TestUSR1DuringStartup: a signal other than TERM/INT/QUIT during start-up
// goes to main, and start-up goes on: main gets ready because of it, the
// helper runs, main reaches the foreground.
func TestUSR1DuringStartup(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", `trap 'echo USR1 >> "$D/main.sigs"; touch "$D/ready"' USR1
trap 'echo TERM >> "$D/main.sigs"; exit 0' TERM
echo $$ > "$D/main.pid"
while :; do sleep 0.05; done
`)
		h := "sh " + script(t, dir, "helper.sh", "touch \"$D/helper.ran\"\n")
		r := start(t, m, dir, "--log-format", "json", "--ready", "file:"+filepath.Join(dir, "ready"),
			"--helper", h, "--", "sh", main)
		r.pidFile("main.pid")
		if r.logsWith("ready") != nil {
			t.Fatal("ready before main created the file")
		}
		r.signal(unix.SIGUSR1)
		r.waitLog("main in the foreground")
		if !exists(filepath.Join(dir, "helper.ran")) {
			t.Error("helper did not run")
		}
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
		if got := lines(filepath.Join(dir, "main.sigs")); !slices.Equal(got, []string{"USR1", "TERM"}) {
			t.Errorf("main got signals %q, want [USR1 TERM]", got)
		}
		r.mustNotLog("signal received during start-up: aborting")
	})
}

// TestForegroundSignals: once main owns the container every signal is
// forwarded to it; SIGTERM becomes --stop-signal.
func TestForegroundSignals(t *testing.T) {
	cases := []struct {
		name  string
		flags []string
		send  []unix.Signal
		want  []string // main.sigs
	}{
		{"TERM", nil, []unix.Signal{unix.SIGTERM}, []string{"TERM"}},
		{"stop-signal-INT", []string{"--stop-signal", "SIGINT"}, []unix.Signal{unix.SIGTERM}, []string{"INT"}},
		{"stop-signal-number", []string{"--stop-signal", "3"}, []unix.Signal{unix.SIGTERM}, []string{"QUIT"}},
		{"HUP-USR2-USR1-then-TERM", nil, []unix.Signal{unix.SIGHUP, unix.SIGUSR2, unix.SIGUSR1, unix.SIGTERM}, []string{"HUP", "USR2", "USR1", "TERM"}},
		{"INT-as-is", []string{"--stop-signal", "SIGQUIT"}, []unix.Signal{unix.SIGINT}, []string{"INT"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				main := serverMain(t, dir, 0)
				args := append([]string{"--log-format", "json"}, c.flags...)
				r := start(t, m, dir, append(args, "--", "sh", main)...)
				r.pidFile("main.pid")
				r.waitLog("main in the foreground")
				sigs := filepath.Join(dir, "main.sigs")
				for i, sig := range c.send {
					r.signal(sig)
					if i < len(c.send)-1 { // one at a time, so the order is known
						waitContains(t, sigs, c.want[i])
					}
				}
				if got := r.wait(long); got != 0 {
					t.Errorf("exit code %d, want main's 0", got)
				}
				if got := lines(sigs); !slices.Equal(got, c.want) {
					t.Errorf("main got signals %q, want %q", got, c.want)
				}
			})
		})
	}
}

// TestGrace: a main that ignores SIGTERM is killed --grace after it → 137.
func TestGrace(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", `trap 'echo TERM >> "$D/main.sigs"' TERM
echo $$ > "$D/main.pid"
while :; do sleep 0.05; done
`)
		r := start(t, m, dir, "--log-format", "json", "--grace", "300ms", "--", "sh", main)
		r.pidFile("main.pid")
		r.waitLog("main in the foreground")
		sent := time.Now()
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 137 {
			t.Errorf("exit code %d, want 137", got)
		}
		if d := r.endedAt().Sub(sent); d < 300*time.Millisecond {
			t.Errorf("main killed %s after SIGTERM, before --grace 300ms", d)
		}
		if got := lines(filepath.Join(dir, "main.sigs")); !slices.Equal(got, []string{"TERM"}) {
			t.Errorf("main got signals %q, want [TERM] before SIGKILL", got)
		}
		r.mustLog("main did not exit within grace; killing it")
	})
}

// TestSignalGroup: with --signal-group a forwarded signal reaches main's
// whole process group (a child of main's shell); without it only main,
// though the child is still swept at exit.
func TestSignalGroup(t *testing.T) {
	for _, group := range []bool{true, false} {
		name := "without"
		if group {
			name = "with"
		}
		t.Run(name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				script(t, dir, "child.sh", `for s in USR1 USR2; do trap "echo $s >> '$D/child.sigs'" $s; done
echo $$ > "$D/child.pid"
while :; do sleep 0.05; done
`)
				main := script(t, dir, "main.sh", `trap 'echo USR1 >> "$D/main.sigs"' USR1
trap 'exit 0' TERM
echo $$ > "$D/main.pid"
sh "$D/child.sh" &
while :; do sleep 0.05; done
`)
				args := []string{"--log-format", "json", "--grace", "2s"}
				if group {
					args = append(args, "--signal-group")
				}
				r := start(t, m, dir, append(args, "--", "sh", main)...)
				mainp, ch := r.pidFile("main.pid"), r.pidFile("child.pid")
				r.waitLog("main in the foreground")
				if p, ok := ch.info(); !ok || p.pgrp != mainp.pid {
					t.Fatalf("main's child %+v is not in main's process group %d", p, mainp.pid)
				}
				r.signal(unix.SIGUSR1)
				waitContains(t, filepath.Join(dir, "main.sigs"), "USR1")
				childSigs := filepath.Join(dir, "child.sigs")
				if group {
					waitContains(t, childSigs, "USR1")
				} else {
					// The child handles pending signals in number order,
					// so once it reports USR2 it would have reported a
					// forwarded USR1 before.
					if err := unix.Kill(ch.pid, unix.SIGUSR2); err != nil {
						t.Fatal(err)
					}
					waitContains(t, childSigs, "USR2")
					if got := lines(childSigs); contains(got, "USR1") {
						t.Errorf("main's child got %q: USR1 reached it without --signal-group", got)
					}
				}
				r.signal(unix.SIGTERM)
				if got := r.wait(long); got != 0 {
					t.Errorf("exit code %d, want main's 0", got)
				}
				mustBeGone(t, "main's child", ch)
			})
		})
	}
}

// TestSignalDuringSweep: a signal that arrives after main exited, while
// mainstay waits out --grace for leftovers, must not change the exit code
// (main's) nor leave the leftovers behind.
func TestSignalDuringSweep(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", stubbornGrandchild+`while [ ! -e "$D/gc.pid" ]; do sleep 0.05; done
exit 5
`)
		r := start(t, m, dir, "--log-format", "json", "--grace", "2s", "--", "sh", main)
		gc := r.pidFile("gc.pid")
		r.waitLog("stopping leftover processes")
		r.signal(unix.SIGTERM) // docker stop, say
		if got := r.wait(long); got != 5 {
			t.Errorf("exit code %d, want main's 5", got)
		}
		mustBeGone(t, "leftover", gc)
	})
}
