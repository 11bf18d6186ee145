//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// setsidHolder is sh code that starts "sleep 1000" in a session of its own
// (setsid), holding the script's stdout and stderr, and returns once it is
// in that session: it has written its PID (in mainstay's namespace) to
// $D/held.$$. Otherwise the script could exit first, and the process group
// of a sidecar's run, killed when the run exits, would still include it.
const setsidHolder = `setsid sh -c 'echo $$ > "$0.tmp"; mv "$0.tmp" "$0"; exec sleep 1000' "$D/held.$$" &
while [ ! -e "$D/held.$$" ]; do sleep 0.01; done
`

// holders are the processes that setsidHolder started so far.
func (r *run) holders() []procRef {
	r.t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.dir, "held.*"))
	var out []procRef
	for _, f := range files {
		if strings.HasSuffix(f, ".tmp") {
			continue
		}
		b, _ := os.ReadFile(f)
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			r.t.Fatalf("%s: %q is not a PID", f, b)
		}
		out = append(out, r.hostPID(n))
	}
	return out
}

// stdout is what mainstay (and the programs under it) wrote to stdout.
func (r *run) stdout() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "mainstay.out"))
	return string(b)
}

// TestSidecarSetsidHolder: a sidecar that exits while a child it started in
// a session of its own (setsid) keeps its stdout and stderr open is seen to
// exit at once: each run is followed by the next within 5 s, round after
// round. The stop, with every process obeying SIGTERM, takes under a
// second; the leftovers are named ("left running by sidecar s") and swept.
func TestSidecarSetsidHolder(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sc := script(t, dir, "sc.sh", `echo "run $$"
`+setsidHolder+`printf partial
exit 1
`)
		r := start(t, m, dir, "--log-format", "json", "--restart-delay", "10ms", "--restart-max-delay", "20ms",
			"--sidecar", "name=s restart=always retries=1000 -- sh "+sc,
			"--ready", "file:"+filepath.Join(dir, "main.pid"), "--", "sh", serverMain(t, dir, 0))
		r.waitLog("main in the foreground")
		const rounds = 6
		for i := 1; i <= rounds; i++ {
			waitFor(t, 5*time.Second, fmt.Sprintf("sidecar run %d", i+1), func() bool { return r.sidecarRuns("s") > i })
		}
		held := r.holders()
		r.signal(unix.SIGTERM)
		sent := time.Now()
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0", got)
		}
		if took := r.endedAt().Sub(sent); took >= time.Second {
			t.Errorf("stop took %s, want under 1s: every process obeys SIGTERM", took)
		}
		for _, p := range held {
			mustBeGone(t, "a setsid'd sleep the sidecar left", p)
		}
		named := r.logsWith("left running by sidecar s")
		if len(named) < rounds {
			t.Errorf("%d runs' leftovers named, want at least %d", len(named), rounds)
		}
		for _, l := range named {
			// The command is sleep's, or sh's that is about to exec it.
			if !strings.Contains(l.str("command"), "sleep 1000") || l.num("pid") <= 0 || l.str("level") != "INFO" {
				t.Errorf("left-running line %v, want INFO with the sleep's pid and command", l)
			}
		}
		r.mustNotLog("sidecar still there after SIGKILL (stuck in the kernel, D state?); giving up on it")
		r.mustNotLog("sidecar did not exit within grace; killing it")
		// Each run's unfinished line is ended with it.
		out := r.stdout()
		if n := strings.Count(out, "[s] partial\n"); n < rounds {
			t.Errorf("%d runs' last lines in stdout, want at least %d:\n%s", n, rounds, out)
		}
		if strings.Contains(out, "partial[s]") || strings.Contains(out, "partialrun") {
			t.Errorf("a run's unfinished line was glued to the next:\n%s", out)
		}
	})
}

// TestSidecarLastLineNoNewline: a sidecar's last line without a newline is
// shown, prefixed, when the run ends; the restarted run's first line
// starts on a line of its own, and so does what follows the stop.
func TestSidecarLastLineNoNewline(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sc := script(t, dir, "sc.sh", `n=$(($(cat "$D/n" 2>/dev/null || echo 0) + 1)); echo $n > "$D/n"
echo "start $n"
printf "end $n"
[ $n -ge 2 ] && { echo $$ > "$D/sc.pid"; exec sleep 1000; }
exit 1
`)
		r := start(t, m, dir, "--log-format", "json", "--restart-delay", "10ms",
			"--sidecar", "name=s -- sh "+sc,
			"--ready", "file:"+filepath.Join(dir, "main.pid"), "--", "sh", serverMain(t, dir, 0))
		r.pidFile("sc.pid")
		r.waitLog("main in the foreground")
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0", got)
		}
		got := lines(filepath.Join(dir, "mainstay.out"))
		want := []string{"[s] start 1", "[s] end 1", "[s] start 2", "[s] end 2"}
		var mine []string
		for _, l := range got {
			if strings.Contains(l, "[s]") || strings.Contains(l, "start") || strings.Contains(l, "end") {
				mine = append(mine, l)
			}
		}
		if strings.Join(mine, "\n") != strings.Join(want, "\n") {
			t.Errorf("sidecar lines %q, want %q", mine, want)
		}
		if out := r.stdout(); !strings.HasSuffix(out, "\n") {
			t.Errorf("stdout does not end with a newline: %q", out)
		}
	})
}

// TestSidecarExitCodeWithHolder: an essential restart=no sidecar that
// exits 5 while a setsid'd child of its holds its output ends everything
// with 5, at once; the child is swept.
func TestSidecarExitCodeWithHolder(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sc := script(t, dir, "sc.sh", setsidHolder+`while [ ! -e "$D/go" ]; do sleep 0.01; done
exit 5
`)
		r := start(t, m, dir, "--log-format", "json",
			"--sidecar", "name=s restart=no -- sh "+sc,
			"--ready", "file:"+filepath.Join(dir, "main.pid"), "--", "sh", serverMain(t, dir, 0))
		r.waitLog("main in the foreground")
		waitFor(t, short, "the setsid'd sleep", func() bool { return len(r.holders()) == 1 })
		held := r.holders()[0]
		touch(t, filepath.Join(dir, "go"))
		if got := r.wait(long); got != 5 {
			t.Errorf("exit code %d, want the sidecar's 5", got)
		}
		mustBeGone(t, "the setsid'd sleep", held)
		if l := r.mustLog("sidecar exited; stopping"); l != nil && l.num("exit_code") != 5 {
			t.Errorf("logged %v, want exit_code 5", l)
		}
		if l := r.mustLog("left running by sidecar s"); l != nil && !strings.Contains(l.str("command"), "sleep 1000") {
			t.Errorf("logged %v, want the sleep named", l)
		}
	})
}
