//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSweepStorm: main leaves 2,000 processes that ignore SIGTERM, then the
// stop begins, either because mainstay gets SIGTERM (main exits on it) or
// because main exits on its own. With --grace 3s, mainstay kills them all
// and exits within about a second of the budget's end, without calling any
// of them stuck in the kernel, and it names a few of them.
func TestSweepStorm(t *testing.T) {
	const (
		n     = 2000
		grace = 3 * time.Second
		// The promise: mainstay exits at most about 1 s after the budget:
		// it gives up on what SIGKILL has not ended yet 1 s after the
		// deadline (reaper.KillWait). The quarter second more is the
		// kernel's: 2,000 deaths take it that long on two cores, and as
		// PID 1 mainstay's own exit completes only once its namespace is
		// empty.
		slack  = time.Second + 250*time.Millisecond
		giveUp = "processes still there after SIGKILL (stuck in the kernel, D state?); giving up on them"
	)
	for _, how := range []string{"sigterm", "main-exits"} {
		t.Run(how, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				// One storm at a time: 2,000 forks beside another mode's
				// stop, or 4,000 processes dying at once on two CPUs, would
				// measure the machine, not mainstay.
				storm.Lock()
				defer storm.Unlock()
				dir := t.TempDir()
				// The subshell ignores SIGTERM, and so do the shells it
				// forks, each blocked opening a FIFO nobody writes (forks
				// without an exec: 2,000 take seconds, not tens of seconds,
				// on a busy machine); it exits, so they are reparented to
				// mainstay. Their command line is main's, which names them
				// in /proc, in this subtest only.
				path := filepath.Join(dir, "main.sh")
				cmdline := "sh\x00" + path + "\x00"
				t.Cleanup(func() { killByCmdline(cmdline) })
				main := script(t, dir, "main.sh", fmt.Sprintf(`trap 'exit 0' TERM
echo $$ > "$D/main.pid"
mkfifo "$D/fifo"
(
trap '' TERM
i=0
while [ $i -lt %d ]; do read x < "$D/fifo" & i=$((i+1)); done
)
echo done > "$D/storm.done"
while [ ! -e "$D/go" ]; do sleep 0.05; done
exit 0
`, n))
				r := start(t, m, dir, "--log-format", "json", "--grace", grace.String(), "--", "sh", main)
				// Not what is tested: a busy machine may take a while.
				waitFor(t, 4*long, "main to start its leftovers", func() bool {
					return exists(filepath.Join(dir, "storm.done"))
				})
				r.waitLog("main in the foreground")
				var began string
				if how == "sigterm" {
					r.signal(unix.SIGTERM)
					began = "stopping main" // the budget runs from here
				} else {
					touch(t, filepath.Join(dir, "go"))
					began = "main exited" // main was never asked: from here
				}
				if got := r.wait(long); got != 0 {
					t.Errorf("exit code %d, want main's 0", got)
				}
				stop := r.mustLog(began)
				if stop == nil {
					return
				}
				deadline := stop.time().Add(grace)
				took := r.endedAt().Sub(stop.time())
				killing := r.mustLog("leftover processes did not exit within grace; killing them")
				if killing != nil {
					// Logged once SIGKILL has gone to every leftover.
					t.Logf("SIGKILL sent to all %s after the deadline; mainstay exited %s after the stop began (--grace %s), %s after the deadline",
						killing.time().Sub(deadline).Round(time.Millisecond), took.Round(time.Millisecond), grace,
						r.endedAt().Sub(deadline).Round(time.Millisecond))
					if killing.time().Before(deadline) {
						t.Errorf("leftovers killed %s before the deadline", deadline.Sub(killing.time()))
					}
					if killing.num("count") < n {
						t.Errorf("killing logged %v, want count >= %d", killing, n)
					}
				}
				if took > grace+slack {
					t.Errorf("mainstay exited %s after the stop began, want at most --grace %s + %s", took, grace, slack)
				}
				r.mustNotLog(giveUp)
				if l := r.mustLog("stopping leftover processes"); l != nil && l.num("count") < n {
					t.Errorf("logged %v, want count >= %d", l, n)
				}
				// A few are named, by PID and command; the others counted.
				named := r.logsWith("leftover process")
				if len(named) == 0 || len(named) > 10 {
					t.Errorf("%d leftovers named, want 1 to 10 (5 a phase at most)", len(named))
				}
				for _, l := range named {
					if l.num("pid") <= 1 || l.str("command") == "" {
						t.Errorf("leftover named without a PID or a command: %v", l)
					}
				}
				if more := r.logsWith("more leftover processes"); len(more) == 0 || more[0].num("count") < n-5 {
					t.Errorf("the leftovers not named are not counted: %v", more)
				}
				if left := pidsByCmdline(cmdline); len(left) > 0 {
					t.Errorf("%d leftovers still running after mainstay exited, e.g. pid %d", len(left), left[0])
				}
			})
		})
	}
}

// storm keeps TestSweepStorm's parallel subtests apart.
var storm sync.Mutex

// pidsByCmdline lists the processes whose /proc/PID/cmdline is cmdline
// (arguments each ended by a NUL) and which have not exited.
func pidsByCmdline(cmdline string) []int {
	var out []int
	for _, p := range allProcs() {
		if p.state == 'Z' || p.state == 'X' {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
		if err == nil && bytes.Equal(b, []byte(cmdline)) {
			out = append(out, p.pid)
		}
	}
	return out
}

// killByCmdline sends SIGKILL to the processes pidsByCmdline lists.
func killByCmdline(cmdline string) {
	for _, pid := range pidsByCmdline(cmdline) {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}
