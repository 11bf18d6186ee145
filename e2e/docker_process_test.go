//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// The process promises under a real engine: docker stop and mainstay's
// grace, docker kill, docker run --init and -it, orphans. Each runs the
// toolbox image (the release mainstay, JSON log lines) with sh as main.

// readyMain is the flag that waits for main's /tmp/up, which the mains
// below touch once their traps are set.
var readyMain = []string{"--ready", "file:/tmp/up"}

// graceIsOneBudget says which meaning of --grace the binary has: true when
// --grace is one budget for the whole stop (main, then the leftover
// processes) followed by SIGKILL, false when main and then the leftovers
// each get a --grace of their own.
const graceIsOneBudget = true

// stopBudget is how long after the stop signal the container should end,
// by mainstay's SIGKILL, when main and a leftover process both ignore
// SIGTERM.
func stopBudget(grace time.Duration, leftovers bool) time.Duration {
	if leftovers && !graceIsOneBudget {
		return 2 * grace
	}
	return grace
}

// defaultGrace is --grace's default, read from mainstay --help.
func defaultGrace(t *testing.T, d *dockerSetup, img string) time.Duration {
	t.Helper()
	out, _ := dockerCmd("run", "--rm", img, "--help")
	m := regexp.MustCompile(`--grace=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no --grace=DEFAULT in mainstay --help:\n%s", out)
	}
	g, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("--grace default %q: %v", m[1], err)
	}
	return g
}

// TestDockerStopTimeout: docker stop -t N against a main that ignores
// SIGTERM. Whichever of mainstay's --grace and Docker's timeout is shorter
// decides. Both end in exit 137, so the test tells them apart by who
// logged what and by when the container ended: when mainstay kills main it
// logs the kill and main's exit; when Docker kills the container first,
// mainstay (PID 1, killed) logs neither.
func TestDockerStopTimeout(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	img := d.toolbox(t)
	def := defaultGrace(t, d, img)
	const ignoreTerm = `trap '' TERM; touch /tmp/up; exec sleep infinity`
	// A leftover that ignores SIGTERM too: main starts it and it outlives
	// main, so mainstay's sweep has to kill it as well.
	const withLeftover = `trap '' TERM; sleep infinity & touch /tmp/up; exec sleep infinity`
	cases := []struct {
		name    string
		grace   time.Duration // 0: the default
		dockerT time.Duration
		main    string
		// end is when the container should end, after the stop signal,
		// and byMainstay whether mainstay's SIGKILL ends it.
		end        time.Duration
		byMainstay bool
	}{
		{"grace-first", 2 * time.Second, 10 * time.Second, ignoreTerm, 2 * time.Second, true},
		{"docker-first", 30 * time.Second, 2 * time.Second, ignoreTerm, 2 * time.Second, false},
		{"default-grace", 0, def + 5*time.Second, ignoreTerm, def, true},
		{"leftover", 3 * time.Second, 15 * time.Second, withLeftover, stopBudget(3*time.Second, true), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{img}
			grace := def
			if tc.grace != 0 {
				grace = tc.grace
				args = append(args, "--grace", grace.String())
			}
			args = append(append(args, readyMain...), "--", "sh", "-c", tc.main)
			c := d.runDetached(t, "", args...)
			c.waitLogs(short, `"main in the foreground"`, 1)

			took := c.stop("-t", fmt.Sprint(int(tc.dockerT.Seconds())))
			if code := c.waitExited(short); code != 137 {
				t.Errorf("exit code %d, want 137 (SIGKILL)", code)
			}
			stopping := c.records("stopping main")
			if len(stopping) != 1 || stopping[0].str("grace") != grace.String() {
				t.Fatalf(`"stopping main" records %v, want one with grace=%s`, stopping, grace)
			}
			ended := c.state().FinishedAt.Sub(stopping[0].time())
			t.Logf("docker stop -t %s, --grace %s: docker stop took %s, the container ended %s after the stop signal",
				tc.dockerT, grace, took.Round(time.Millisecond), ended.Round(time.Millisecond))
			// A second is the slack of SIGKILL and the engine's book-keeping.
			if ended < tc.end-100*time.Millisecond || ended > tc.end+time.Second {
				t.Errorf("the container ended %s after the stop signal, want %s", ended, tc.end)
			}
			if took > tc.end+2*time.Second {
				t.Errorf("docker stop took %s, want about %s", took, tc.end)
			}
			exited := c.records("main exited")
			if tc.byMainstay {
				if len(exited) != 1 || exited[0].num("exit_code") != 137 {
					t.Errorf(`"main exited" records %v, want one with exit_code 137: mainstay killed main`, exited)
				}
				if len(c.records("main did not exit within grace; killing it")) != 1 {
					t.Error("mainstay did not log that it killed main")
				}
			} else if len(exited) != 0 || len(c.records("main did not exit within grace; killing it")) != 0 {
				t.Errorf("mainstay logged main's end, but Docker should have killed the container first: %v", exited)
			}
		})
	}
}

// TestDockerKill: docker kill -s HUP and -s USR1 reach main through
// mainstay; docker kill (SIGKILL) ends the container at once.
func TestDockerKill(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	c := d.runDetached(t, "", append(append([]string{d.toolbox(t)}, readyMain...), "--", "sh", "-c",
		`for s in HUP USR1; do trap "echo main: got $s" $s; done; touch /tmp/up; while :; do sleep 0.05; done`)...)
	c.waitLogs(short, `"main in the foreground"`, 1)
	for _, sig := range []string{"HUP", "USR1"} {
		docker(t, "kill", "-s", sig, c.name)
		c.waitLogs(short, "main: got "+sig, 1)
	}
	start := time.Now()
	docker(t, "kill", c.name)
	code := c.waitExited(short)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("docker kill took %s to end the container", took)
	}
	if code != 137 {
		t.Errorf("exit code %d after docker kill, want 137", code)
	}
	if n := len(c.records("main exited")); n != 0 {
		t.Error("mainstay outlived docker kill long enough to log main's exit")
	}
}

// TestDockerUserWithoutCapabilities: docker run --cap-drop ALL (what
// Kubernetes' restricted profile does) with --user: mainstay is root but
// cannot switch users; it exits 2 with one line naming --user and the
// capability, before anything starts (not 126 blaming the program).
func TestDockerUserWithoutCapabilities(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	c := d.runDetached(t, "", "--cap-drop", "ALL", d.toolbox(t), "--user", "nobody", "--", "sh", "-c", "echo main ran")
	if code := c.waitExited(short); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	logs := strings.TrimSpace(c.logs())
	if strings.Count(logs, "\n") != 0 || !strings.Contains(logs, "--user nobody") || !strings.Contains(logs, "without CAP_SET") {
		t.Errorf("logs %q, want one line naming --user and the capability", logs)
	}
	if strings.Contains(logs, "main ran") {
		t.Error("main was started")
	}
}

// TestDockerInit: docker run --init makes Docker's init PID 1; mainstay is
// then a child subreaper: an orphan of main is reparented to mainstay, not
// to PID 1, and reaped; main's exit code is the container's.
func TestDockerInit(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	c := d.runDetached(t, "", "--init", d.toolbox(t), "--", "sh", "-c", `
echo "pid1: $(cat /proc/1/comm)"
sh -c 'sleep 1 & echo $! > /tmp/orphan'
o=$(cat /tmp/orphan)
set -- $(cat /proc/$o/stat)
echo "orphan: parent $4, mainstay $PPID"
while [ -e /proc/$o ]; do sleep 0.05; done
echo "orphan: reaped"
exit 7
`)
	if code := c.waitExited(short); code != 7 {
		t.Errorf("exit code %d, want main's 7", code)
	}
	logs := c.logs()
	if !strings.Contains(logs, "pid1: docker-init") {
		t.Errorf("PID 1 is not Docker's init:\n%s", logs)
	}
	m := regexp.MustCompile(`orphan: parent (\d+), mainstay (\d+)`).FindStringSubmatch(logs)
	if m == nil || m[1] != m[2] || m[1] == "1" {
		t.Errorf("the orphan's parent is not mainstay (a subreaper): %q", m)
	}
	if !strings.Contains(logs, "orphan: reaped") {
		t.Error("the orphan was not reaped")
	}
}

// TestDockerTerminal: docker run -it, driven through a pseudo-terminal. A
// helper reads a line from the terminal, then main has the terminal and
// Ctrl-C reaches it from the container's terminal (not through mainstay).
func TestDockerTerminal(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	c := d.newContainer(t, "")
	cmd := exec.Command("docker", append(append([]string{"run", "-it", "--name", c.name, d.toolbox(t)}, readyMain...),
		"--log-level", "debug", "--helper", `sh -c 'printf "name? "; read n; echo "helper read: $n"'`,
		"--", "sh", "-c", `trap 'echo "main: got INT"; exit 3' INT; touch /tmp/up; while :; do sleep 0.05; done`)...)
	master, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	term, done := readTerminal(master)
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		master.Close()
		<-done
		if t.Failed() {
			t.Logf("the terminal:\n%s", term.output())
		}
	})
	seen := func(s string) {
		t.Helper()
		waitFor(t, long, fmt.Sprintf("%q on the terminal", s), func() bool {
			return strings.Contains(string(term.output()), s)
		})
	}
	seen("name? ")
	term.write(t, "alice\r")
	seen("helper read: alice")
	seen(`"main in the foreground"`)
	term.write(t, "\x03")
	seen("main: got INT")
	select {
	case <-exited:
	case <-time.After(short):
		t.Fatal("docker run -it did not exit after main did")
	}
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("docker run exited %d, want main's 3", code)
	}
	if code := c.state().ExitCode; code != 3 {
		t.Errorf("the container's exit code is %d, want main's 3", code)
	}
	if n := strings.Count(string(term.output()), "forwarding signal"); n != 0 {
		t.Error("mainstay forwarded the Ctrl-C: it should reach main from the terminal")
	}
}

// TestDockerOrphanStorm: main leaves hundreds of orphans behind, and one
// daemon that outlives it. docker top shows no zombie once they exit;
// docker stop ends main, the sweep stops the daemon with SIGTERM, and
// nothing of the container is left running.
func TestDockerOrphanStorm(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	c := d.runDetached(t, "", d.toolbox(t), "--", "sh", "-c", `trap 'exit 0' TERM
setsid sh -c 'trap "echo leftover: got TERM; exit 0" TERM; while :; do sleep 0.05; done' &
i=0
while [ $i -lt 300 ]; do sh -c 'sleep 0.3 & sleep 0.2 &'; i=$((i+1)); done
echo "main: storm done"
while :; do sleep 0.05; done
`)
	c.waitLogs(long, "main: storm done", 1)
	var procs []topProc
	waitFor(t, long, "the orphans to be gone, none a zombie", func() bool {
		procs = c.top()
		for _, p := range procs {
			if strings.HasPrefix(p.args, "sleep 0.") && p.args != "sleep 0.05" {
				return false
			}
		}
		return c.zombies() == 0
	})
	var refs []procRef
	for _, p := range procs {
		if info, ok := readProc(p.pid); ok {
			refs = append(refs, procRef{pid: p.pid, start: info.start})
		}
	}
	if len(refs) < 3 {
		t.Fatalf("docker top shows %d of mainstay, main and the daemon: %+v", len(refs), procs)
	}
	c.stop()
	if code := c.waitExited(short); code != 0 {
		t.Errorf("exit code %d, want main's 0", code)
	}
	if !strings.Contains(c.logs(), "leftover: got TERM") {
		t.Error("the daemon left behind did not get SIGTERM from the sweep")
	}
	if len(c.records("stopping leftover processes")) != 1 {
		t.Error(`no "stopping leftover processes" record`)
	}
	for _, r := range refs {
		if r.alive() {
			t.Errorf("process %d of the container is still running", r.pid)
			_ = syscall.Kill(r.pid, syscall.SIGKILL)
		}
	}
}

// TestDockerExecOrphans: a process that docker exec starts is not
// mainstay's child, but the orphans it leaves are reparented to PID 1,
// which must reap them both while main runs (the reaper then sleeps in
// waitid) and before main exists, while mainstay has no child at all (it
// then listens for SIGCHLD): here during a --wait-for that never passes.
func TestDockerExecOrphans(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	for _, tc := range []struct {
		name string
		args []string
		up   string // what the log says once mainstay is in the phase to test
	}{
		{"main running", []string{"--", "sleep", "1000"}, "main in the foreground"},
		{"no child at all", []string{"--log-level", "debug", "--wait-for", "tcp:127.0.0.1:1", "--wait-for-timeout", "10m", "--", "sleep", "1000"}, `"msg":"probe failed"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := d.runDetached(t, "", append([]string{d.toolbox(t)}, tc.args...)...)
			c.waitLogs(long, tc.up, 1)
			// The exec'd sh exits at once (docker exec returns: the sleeps
			// do not hold its output open); its two sleeps become PID 1's.
			if out, err := c.exec("sh", "-c", "sleep 0.2 >/dev/null 2>&1 & sleep 0.3 >/dev/null 2>&1 & exit 0"); err != nil {
				t.Fatalf("docker exec: %v\n%s", err, out)
			}
			waitFor(t, long, "the exec'd orphans to be reaped, none a zombie", func() bool {
				for _, p := range c.top() {
					if strings.HasPrefix(p.args, "sleep 0.") {
						return false
					}
				}
				return c.zombies() == 0
			})
			if tc.name == "no child at all" && len(c.records("main started")) != 0 {
				t.Fatal("main started: the wait for tcp:127.0.0.1:1 should still be going on")
			}
		})
	}
}
