//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/main/control"
	"golang.org/x/sys/unix"
)

// asNobody runs a command as the overflow user, as a non-root client (or
// image) does.
var asNobody = []string{"setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--"}

// ctlOut runs "mainstay OP --control-socket SOCK ARGS..." (after wrap,
// when given) from the test, outside mainstay's namespaces: the socket is
// a file in the run's directory. It returns stdout, stderr and the exit
// status.
func ctlOut(t *testing.T, sock string, wrap []string, op string, args ...string) (string, string, int) {
	t.Helper()
	argv := append(append(append([]string(nil), wrap...), bin, op, "--control-socket", sock), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%q: %v", argv, err)
	}
	return out.String(), errOut.String(), code
}

// statusOf is "mainstay status --json".
func statusOf(t *testing.T, sock string, wrap ...string) control.Status {
	t.Helper()
	out, errOut, code := ctlOut(t, sock, wrap, "status", "--json")
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --json: exit %d, %q, %q", code, out, errOut)
	}
	return st
}

func childOf(st control.Status, name string) control.Child {
	for _, c := range st.Children {
		if c.Name == name {
			return c
		}
	}
	return control.Child{}
}

// socketDir is a directory for a control socket that any user can reach.
func socketDir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		os.Chmod(d, 0o755)
	}
	return dir
}

// TestControlRestartMemcached: "mainstay restart cache" stops memcached
// and starts it again at once: a new PID serves, the restarts in a row
// (one after a crash) are reset, and the log says who asked.
func TestControlRestartMemcached(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "control.sock")
		port := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		r := start(t, m, dir, "--log-format", "json", "--control-socket", sock, "--restart-delay", "10ms",
			"--sidecar", fmt.Sprintf("name=cache ready=tcp:%s -- memcached -u nobody -l 127.0.0.1 -p %d", addr, port),
			"--", "sh", serverMain(t, dir, 0))
		r.waitLog("main in the foreground")
		crashed := r.sidecarPID("cache")
		unix.Kill(crashed.pid, unix.SIGKILL)
		waitFor(t, short, "cache back after a crash", func() bool {
			c := childOf(statusOf(t, sock), "cache")
			return c.State == "running" && c.Restarts == 1 && r.sidecarRuns("cache") == 2
		})
		before := childOf(statusOf(t, sock), "cache")
		old := r.sidecarPID("cache")
		if _, errOut, code := ctlOut(t, sock, nil, "restart", "cache"); code != 0 {
			t.Fatalf("restart: exit %d, %q", code, errOut)
		}
		after := childOf(statusOf(t, sock), "cache")
		if after.PID == before.PID || after.PID == 0 || after.Restarts != 0 || after.State != "running" {
			t.Errorf("after the restart %+v, before %+v: want a new PID, running, 0 restarts", after, before)
		}
		if got, err := memcachedVersion(addr); err != nil || !strings.HasPrefix(got, "VERSION ") {
			t.Errorf("the new memcached: %q, %v", got, err)
		}
		mustBeGone(t, "the old memcached", old)
		l := r.mustLog("stopping sidecar: asked by an operator")
		if l.str("sidecar") != "cache" || !strings.HasPrefix(l.str("by"), "uid 0 pid ") || l.str("op") != "restart" {
			t.Errorf("log line %v, want who asked", l)
		}
		if l := r.mustLog("control request"); l.num("caller_uid") != 0 || l.str("result") != "done" {
			t.Errorf("log line %v", l)
		}
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0", got)
		}
	})
}

// TestControlSignalApacheReload: "mainstay signal HUP web" makes an apache2
// sidecar read its changed configuration: the response changes, and the
// sidecar was not restarted.
func TestControlSignalApacheReload(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "control.sock")
			port := freePort(t)
			web := apacheMain(t, dir, port)
			www2 := filepath.Join(dir, "www2")
			os.MkdirAll(www2, 0o755)
			os.WriteFile(filepath.Join(www2, "index.html"), []byte("served after the reload\n"), 0o644)
			url := fmt.Sprintf("http://127.0.0.1:%d/index.html", port)
			r := start(t, m, dir, "--log-format", "json", "--control-socket", sock,
				"--sidecar", "name=web ready="+url+" -- "+strings.Join(web, " "),
				"--", "sh", serverMain(t, dir, 0))
			r.waitLog("main in the foreground")
			mustServe(t, port)
			conf := web[2]
			b, _ := os.ReadFile(conf)
			os.WriteFile(conf, bytes.Replace(b, []byte("DocumentRoot "+filepath.Join(dir, "www")), []byte("DocumentRoot "+www2), 1), 0o644)
			if _, errOut, code := ctlOut(t, sock, nil, "signal", "HUP", "web"); code != 0 {
				t.Fatalf("signal: exit %d, %q", code, errOut)
			}
			waitFor(t, short, "the new configuration served", func() bool {
				resp, err := http.Get(url)
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				got, _ := io.ReadAll(resp.Body)
				return string(got) == "served after the reload\n"
			})
			if n := r.sidecarRuns("web"); n != 1 {
				t.Errorf("%d runs of web, want 1: a reload, not a restart", n)
			}
			r.signal(unix.SIGTERM)
			if got := r.wait(long); got != 0 {
				t.Errorf("exit code %d, want main's 0", got)
			}
		})
	}
}

// TestControlStopStartEssential: an operator's stop of an essential sidecar
// keeps it down and the container going (not ready: restarting); start
// brings it back, and ready.
func TestControlStopStartEssential(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "control.sock")
		r := start(t, m, dir, "--log-format", "json", "--control-socket", sock,
			"--sidecar", "name=sc -- sleep 1000", "--", "sh", serverMain(t, dir, 0))
		r.waitLog("main in the foreground")
		if _, errOut, code := ctlOut(t, sock, nil, "stop", "sc"); code != 0 {
			t.Fatalf("stop: exit %d, %q", code, errOut)
		}
		st := statusOf(t, sock)
		if c := childOf(st, "sc"); c.State != "stopped" || c.PID != 0 || st.Phase != "restarting" || st.Ready {
			t.Errorf("after stop: %+v, child %+v", st, c)
		}
		time.Sleep(200 * time.Millisecond) // nothing may follow: no restart, no end
		if r.exited() || r.sidecarRuns("sc") != 1 {
			t.Fatalf("after an operator's stop: exited %v, %d runs", r.exited(), r.sidecarRuns("sc"))
		}
		if l := r.mustLog("sidecar stopped by an operator; kept down until started again"); !strings.HasPrefix(l.str("by"), "uid 0") {
			t.Errorf("log line %v", l)
		}
		r.mustNotLog("essential sidecar")
		if _, errOut, code := ctlOut(t, sock, nil, "start", "sc"); code != 0 {
			t.Fatalf("start: exit %d, %q", code, errOut)
		}
		st = statusOf(t, sock)
		if c := childOf(st, "sc"); c.State != "running" || c.PID == 0 || st.Phase != "ready" || !st.Ready {
			t.Errorf("after start: %+v, child %+v", st, c)
		}
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0", got)
		}
	})
}

// TestControlStatusStates: status --json through the states: starting
// (changes refused), ready, backoff with its next restart, gave-up,
// stopped; unknown names and main refused.
func TestControlStatusStates(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "control.sock")
		goFile := filepath.Join(dir, "go")
		r := start(t, m, dir, "--log-format", "json", "--control-socket", sock,
			"--restart-delay", "1h", "--restart-max-delay", "1h", "--ready", "file:"+goFile,
			"--sidecar", "name=quitter essential=false retries=0 -- sh -c 'exit 3'",
			"--sidecar", "name=flaky essential=false -- sh -c 'exit 4'",
			"--sidecar", "name=steady -- sleep 1000",
			"--", "sh", serverMain(t, dir, 0))
		r.waitLog("main started")
		st := statusOf(t, sock)
		if st.Phase != "starting" || st.Ready {
			t.Errorf("before main is ready: %+v", st)
		}
		if _, errOut, code := ctlOut(t, sock, nil, "restart", "steady"); code != 1 || !strings.Contains(errOut, "starting") {
			t.Errorf("restart while starting: exit %d, %q", code, errOut)
		}
		touch(t, goFile)
		waitFor(t, short, "ready", func() bool { return statusOf(t, sock).Phase == "ready" })
		st = statusOf(t, sock)
		if c := childOf(st, "quitter"); c.State != "gave-up" || c.LastExit == nil || c.LastExit.Code != 3 {
			t.Errorf("quitter %+v", c)
		}
		if c := childOf(st, "flaky"); c.State != "backoff" || c.NextRestart == nil || c.Restarts != 1 {
			t.Errorf("flaky %+v", c)
		}
		if c := childOf(st, "steady"); c.State != "running" || c.PID == 0 || c.Uptime == nil || strings.Join(c.Command, " ") != "sleep 1000" {
			t.Errorf("steady %+v", c)
		}
		if c := childOf(st, "main"); c.Kind != "main" || c.State != "running" {
			t.Errorf("main %+v", c)
		}
		ctlOut(t, sock, nil, "stop", "steady")
		if c := childOf(statusOf(t, sock), "steady"); c.State != "stopped" {
			t.Errorf("steady after stop: %+v", c)
		}
		if _, errOut, code := ctlOut(t, sock, nil, "restart", "nope"); code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "quitter, flaky, steady, main") {
			t.Errorf("restart nope: exit %d, %q", code, errOut)
		}
		if _, errOut, code := ctlOut(t, sock, nil, "stop", "main"); code != 1 || !strings.Contains(errOut, "docker restart") {
			t.Errorf("stop main: exit %d, %q", code, errOut)
		}
		out, _, code := ctlOut(t, sock, nil, "status")
		if code != 0 || !strings.Contains(out, "phase: restarting, ready: no") || !strings.Contains(out, "gave-up") {
			t.Errorf("status table: exit %d\n%s", code, out)
		}
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0", got)
		}
	})
}

// TestControlNonRoot: a client that is neither root nor mainstay's user
// sees status without the commands, and is refused a restart.
func TestControlNonRoot(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := socketDir(t)
		sock := filepath.Join(dir, "control.sock")
		r := start(t, m, dir, "--log-format", "json", "--control-socket", sock,
			"--sidecar", "name=sc -- sleep 1000", "--", "sleep", "1000")
		r.waitLog("main in the foreground")
		st := statusOf(t, sock, asNobody...)
		if c := childOf(st, "sc"); c.State != "running" || c.PID == 0 || c.Command != nil {
			t.Errorf("status as nobody: %+v", c)
		}
		if c := childOf(statusOf(t, sock), "sc"); c.Command == nil {
			t.Errorf("status as root: no command: %+v", c)
		}
		if _, errOut, code := ctlOut(t, sock, asNobody, "restart", "sc"); code != 1 || !strings.Contains(errOut, "permission denied") {
			t.Errorf("restart as nobody: exit %d, %q", code, errOut)
		}
		if l := r.mustLog("control request"); l.str("result") != "denied" || l.num("caller_uid") != 65534 {
			t.Errorf("log line %v", l)
		}
		if r.sidecarRuns("sc") != 1 {
			t.Error("restarted all the same")
		}
	})
}

// TestControlStaleSocket: after mainstay is SIGKILLed, its socket file is
// left; the client says nobody answers (3), and the next mainstay replaces
// it (the lock is free).
func TestControlStaleSocket(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "control.sock")
		r := start(t, m, dir, "--control-socket", sock, "--", "sleep", "1000")
		waitFor(t, short, "the socket", func() bool { _, _, code := ctlOut(t, sock, nil, "status"); return code == 0 })
		unix.Kill(r.PID(), unix.SIGKILL)
		r.wait(long)
		if !exists(sock) {
			t.Fatal("no socket file left")
		}
		if _, errOut, code := ctlOut(t, sock, nil, "status"); code != 3 || !strings.Contains(errOut, "no mainstay answers") {
			t.Errorf("status of a dead mainstay: exit %d, %q", code, errOut)
		}
		dir2 := t.TempDir()
		start(t, m, dir2, "--control-socket", sock, "--", "sleep", "1000")
		waitFor(t, short, "the new mainstay answering", func() bool { _, _, code := ctlOut(t, sock, nil, "status"); return code == 0 })
	})
}

// TestControlPathInUse: a second mainstay on the path of a running one, or
// on a path where a foreign file is, is a usage error: exit 2, one line,
// nothing started, the file left alone.
func TestControlPathInUse(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "control.sock")
		start(t, m, dir, "--control-socket", sock, "--", "sleep", "1000")
		waitFor(t, short, "the socket", func() bool { _, _, code := ctlOut(t, sock, nil, "status"); return code == 0 })
		foreign := filepath.Join(dir, "foreign")
		os.WriteFile(foreign, []byte("mine\n"), 0o644)
		for _, path := range []string{sock, foreign} {
			dir2 := t.TempDir()
			started := filepath.Join(dir2, "started")
			r2 := start(t, m, dir2, "--control-socket", path, "--sidecar", "touch "+started, "--", "touch", started)
			if got := r2.wait(long); got != 2 {
				t.Errorf("%s: exit %d, want 2", path, got)
			}
			if e := r2.stderr(); strings.Count(e, "\n") != 1 || !strings.Contains(e, "--control-socket") {
				t.Errorf("%s: stderr %q, want one line", path, e)
			}
			if exists(started) {
				t.Errorf("%s: something started", path)
			}
		}
		if b, _ := os.ReadFile(foreign); string(b) != "mine\n" {
			t.Errorf("the foreign file now holds %q", b)
		}
		if _, _, code := ctlOut(t, sock, nil, "status"); code != 0 {
			t.Error("the first mainstay no longer answers")
		}
	})
}

// TestControlDefaultPathDenied: a mainstay that cannot use the default
// path (run as nobody: /run/mainstay is root's, or absent and not
// creatable) runs without a socket and says so in one line.
func TestControlDefaultPathDenied(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		r := startWith(t, m, dir, config{wrap: asNobody, env: []string{"MAINSTAY_CONTROL_SOCKET="}},
			"--log-format", "json", "--ready", "tcp:1", "--ready-timeout", "300ms", "--", "sleep", "1000")
		if got := r.wait(long); got != 124 {
			t.Errorf("exit code %d, want 124: it ran, its probe never passed", got)
		}
		if n := len(r.logsWith("no control socket: mainstay status, restart, stop, start and signal will not answer")); n != 1 {
			t.Errorf("%d lines about the socket, want 1:\n%s", n, r.stderr())
		}
		r.mustLog("main started")
	})
}

// TestControlHealthLevels: while an essential sidecar restarts, health
// --level ready says no (1) and --level alive stays yes (0).
func TestControlHealthLevels(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "control.sock")
		up := filepath.Join(dir, "up")
		touch(t, up)
		r := start(t, m, dir, "--log-format", "json", "--control-socket", sock,
			"--sidecar", "name=sc ready=file:"+up+" -- sleep 1000", "--", "sh", serverMain(t, dir, 0))
		r.waitLog("main in the foreground")
		health := func(level string) int { _, _, code := ctlOut(t, sock, nil, "health", "--level", level); return code }
		if health("ready") != 0 || health("alive") != 0 {
			t.Fatalf("health before: ready %d, alive %d", health("ready"), health("alive"))
		}
		os.Remove(up)
		done := make(chan int, 1)
		go func() { _, _, code := ctlOut(t, sock, nil, "restart", "sc"); done <- code }()
		waitFor(t, short, "health ready 1", func() bool { return health("ready") == 1 })
		for range 5 {
			if got := health("alive"); got != 0 {
				t.Fatalf("health alive %d during the restart", got)
			}
			time.Sleep(20 * time.Millisecond)
		}
		touch(t, up)
		if code := <-done; code != 0 {
			t.Errorf("restart: exit %d", code)
		}
		if health("ready") != 0 || health("alive") != 0 {
			t.Errorf("health after: ready %d, alive %d", health("ready"), health("alive"))
		}
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0", got)
		}
	})
}
