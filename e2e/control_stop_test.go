//go:build e2e

package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestControlStatusStopping: while main ignores SIGTERM under a long
// --grace, status still answers, with the phase stopping: main still
// running, the sidecar still up (sidecars stop after main), not ready and
// not alive; restart is refused with "stopping".
func TestControlStatusStopping(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "control.sock")
		main := script(t, dir, "main.sh", `trap '' TERM
echo $$ > "$D/main.pid"
while :; do sleep 0.05; done
`)
		r := start(t, m, dir, append(append([]string{"--log-format", "json", "--control-socket", sock, "--grace", "1m",
			"--sidecar", "name=sc -- sleep 1000"}, mainReady(dir)...), "--", "sh", main)...)
		r.waitLog("main in the foreground")
		mainPID := r.pidFile("main.pid")
		if st := statusOf(t, sock); st.Phase != "ready" || !st.Ready {
			t.Fatalf("before the stop: %+v", st)
		}

		r.signal(unix.SIGTERM)
		r.waitLog("stopping main")
		st := statusOf(t, sock)
		if st.Phase != "stopping" || st.Ready {
			t.Errorf("status while main ignores SIGTERM: phase %q, ready %v; want stopping, not ready", st.Phase, st.Ready)
		}
		if c := childOf(st, "main"); c.State != "running" || c.PID == 0 {
			t.Errorf("main while stopping: %+v", c)
		}
		if c := childOf(st, "sc"); c.State != "running" || c.PID == 0 {
			t.Errorf("the sidecar while main stops: %+v", c)
		}
		out, _, code := ctlOut(t, sock, nil, "status")
		if code != 0 || !strings.HasPrefix(out, "phase: stopping, ready: no\n") {
			t.Errorf("status table while stopping: exit %d\n%s", code, out)
		}
		for _, level := range []string{"ready", "alive"} {
			if out, _, code := ctlOut(t, sock, nil, "health", "--level", level); code != 1 || out != "stopping\n" {
				t.Errorf("health --level %s while stopping: exit %d, %q", level, code, out)
			}
		}
		if _, errOut, code := ctlOut(t, sock, nil, "restart", "sc"); code != 1 || !strings.Contains(errOut, "stopping") {
			t.Errorf("restart while stopping: exit %d, %q", code, errOut)
		}
		if r.exited() {
			t.Fatal("mainstay ended within its minute of grace")
		}

		// End it: main killed, the sidecar stopped, mainstay exits with
		// main's 137.
		unix.Kill(mainPID.pid, unix.SIGKILL)
		if got := r.wait(long); got != 137 {
			t.Errorf("exit code %d, want main's 137", got)
		}
	})
}
