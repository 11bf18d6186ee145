//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A sidecar's ready=notify: the sidecar says READY=1 on a NOTIFY_SOCKET of
// its own (one per run), which no other process gets.

// TestSidecarNotifyRedis: redis-server --supervised systemd as a sidecar,
// as the redis user, with ready=notify. Main starts, and the helper's
// redis-cli ping runs, only once redis sent READY=1 (nothing polled it);
// its STATUS= lines and its STOPPING=1 at the stop are logged under the
// sidecar's name.
func TestSidecarNotifyRedis(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := dbDir(t, "redis")
		port := strconv.Itoa(freePort(t))
		cli := "redis-cli -e -h 127.0.0.1 -p " + port
		r := start(t, m, dir, "--log-format", "json",
			"--sidecar", "name=cache user=redis ready=notify -- redis-server --supervised systemd --port "+port+
				" --bind 127.0.0.1 --dir "+dir+" --save ''",
			"--helper", cli+" ping", "--helper", cli+" SET greeting 'hello, world'",
			"--", "sh", serverMain(t, dir, 0))
		r.waitLog("main in the foreground")
		notified := r.mustLog("sidecar sent READY=1")
		started := r.mustLog("main started")
		if notified != nil && started != nil && started.time().Before(notified.time()) {
			t.Errorf("main started at %s, before the sidecar's READY=1 at %s", started.time(), notified.time())
		}
		if notified.str("sidecar") != "cache" {
			t.Errorf("READY=1 record %v, want sidecar cache", notified)
		}
		if passed := r.mustLog("probe passed"); passed.str("probe") != "notify" || passed.str("sidecar") != "cache" || passed.num("attempt") != 1 {
			t.Errorf("probe passed: %v, want the sidecar's notify at attempt 1", passed)
		}
		r.mustNotLog("probe failed")
		r.mustNotLog("notify message refused: the sender is neither in sidecar's process tree nor sidecar's user")
		if ok := r.logsWith("helper succeeded"); len(ok) != 2 {
			t.Errorf("helpers succeeded: %v, want both (ping, SET)", ok)
		}
		var statuses []string
		for _, l := range r.logsWith("sidecar status") {
			if l.str("sidecar") == "cache" {
				statuses = append(statuses, l.str("status"))
			}
		}
		if !contains(statuses, "Ready to accept connections") {
			t.Errorf("redis's STATUS= lines %q, want Ready to accept connections among them", statuses)
		}
		out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", port, "GET", "greeting").Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != "hello, world" {
			t.Errorf("GET greeting = %q, %v", got, err)
		}
		r.signal(unix.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Fatalf("mainstay exited %d after SIGTERM, want 0", code)
		}
		if l := r.mustLog("sidecar sent STOPPING=1"); l.str("sidecar") != "cache" {
			t.Errorf("STOPPING=1 record %v, want sidecar cache", l)
		}
		mustSayBye(t, r, dir)
	})
}

// TestSidecarNotifyRestart: a shell sidecar (as nobody, restart=always)
// that says READY=1 with systemd-notify. Killed, it is restarted with a
// new socket, and health says restarting until the new run's own READY=1:
// a READY=1 sent to the first run's socket is refused by the kernel, and
// one from a process that is neither in the new run's tree nor its user
// is refused by mainstay.
func TestSidecarNotifyRestart(t *testing.T) {
	needSystemdNotify(t)
	eachMode(t, func(t *testing.T, m mode) {
		dir := dbDir(t, "nobody")
		ready := filepath.Join(dir, "ready")
		// Run N says READY=1 once the test has made $D/go.N.
		sc := script(t, dir, "sc.sh", `n=$(($(cat "$D/n" 2>/dev/null || echo 0) + 1)); echo $n > "$D/n"
echo "$NOTIFY_SOCKET" > "$D/sock.$n"
echo $$ > "$D/sc.pid.$n"
while [ ! -e "$D/go.$n" ]; do sleep 0.01; done
systemd-notify --ready --status="run $n" && touch "$D/notified.$n"
exec sleep 1000
`)
		r := start(t, m, dir, "--log-format", "json", "--ready-file", ready, "--restart-delay", "10ms",
			"--sidecar", "name=sc user=nobody restart=always ready=notify -- sh "+sc,
			"--ready", "file:"+filepath.Join(dir, "main.pid"), "--", "sh", serverMain(t, dir, 0))
		first := waitLine(t, filepath.Join(dir, "sock.1"))
		if exists(filepath.Join(dir, "main.pid")) {
			t.Fatal("main started before the sidecar's READY=1")
		}
		touch(t, filepath.Join(dir, "go.1"))
		r.waitLog("ready file written")
		if state, code := health(t, r, ready); state != "ready" || code != 0 {
			t.Fatalf("health: %q exit %d, want ready", state, code)
		}

		old := r.pidFile("sc.pid.1")
		if err := unix.Kill(old.pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		second := waitLine(t, filepath.Join(dir, "sock.2"))
		if !strings.HasPrefix(first, "@") || !strings.HasPrefix(second, "@") || first == second {
			t.Fatalf("the runs' NOTIFY_SOCKET: %q then %q, want two different abstract sockets", first, second)
		}
		if state, code := health(t, r, ready); state != "restarting" || code != 1 {
			t.Errorf("health after the restart, before its READY=1: %q exit %d, want restarting", state, code)
		}
		// The test is root, neither nobody nor in the new run's tree.
		if out, err := notifyFromTest(first); err == nil {
			t.Errorf("READY=1 to the first run's socket was accepted: %s", out)
		}
		if out, err := notifyFromTest(second); err != nil {
			t.Fatalf("systemd-notify to the second run's socket: %v %s", err, out)
		}
		waitFor(t, short, "mainstay to refuse the outsider's READY=1", func() bool {
			return len(r.logsWith("notify message refused: the sender is neither in sidecar's process tree nor sidecar's user")) > 0
		})
		if state, _ := health(t, r, ready); state != "restarting" {
			t.Errorf("health after an outsider's READY=1: %q, want restarting", state)
		}

		touch(t, filepath.Join(dir, "go.2"))
		waitFor(t, short, "health ready again", func() bool {
			state, code := health(t, r, ready)
			return state == "ready" && code == 0
		})
		// systemd-notify returns once mainstay closed its barrier descriptor.
		waitFor(t, short, "the second run's systemd-notify to return", func() bool { return exists(filepath.Join(dir, "notified.2")) })
		notes := r.logsWith("sidecar sent READY=1")
		if len(notes) != 2 || notes[0].num("pid") == notes[1].num("pid") {
			t.Errorf("READY=1 records %v, want one from each run", notes)
		}
		var statuses []string
		for _, l := range r.logsWith("sidecar status") {
			statuses = append(statuses, l.str("sidecar")+": "+l.str("status"))
		}
		if len(statuses) != 2 || statuses[0] != "sc: run 1" || statuses[1] != "sc: run 2" {
			t.Errorf("status records %q, want sc: run 1, sc: run 2", statuses)
		}
		r.signal(unix.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Fatalf("mainstay exited %d, want 0", code)
		}
	})
}

// notifyFromTest sends READY=1 with systemd-notify to the abstract socket
// addr from the test: as root, outside every process tree mainstay
// started, in the network namespace mainstay shares with the test.
func notifyFromTest(addr string) (string, error) {
	cmd := exec.Command("systemd-notify", "--ready")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+addr)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSidecarNotifyEnv: each NOTIFY_SOCKET reaches its own process only.
// Main (--ready notify) and a sidecar with ready=notify each get their
// own; a sidecar without ready=notify (started before main's socket
// exists, or after it), the helper, and the exec probes of main and of
// the notify sidecar get none. No notify socket leaks into any child as
// an open descriptor.
func TestSidecarNotifyEnv(t *testing.T) {
	needSystemdNotify(t)
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		// record NAME writes NAME's NOTIFY_SOCKET (or none), then the
		// number of sockets among its open descriptors.
		record := func(name string) string {
			return fmt.Sprintf(`echo "${NOTIFY_SOCKET:-none}" > "$D/%[1]s.env"; ls -l /proc/$$/fd | grep -c socket: > "$D/%[1]s.fds"`, name)
		}
		write := func(name, rest string) string {
			return "sh " + script(t, dir, name+".sh", record(name)+"\n"+rest)
		}
		forever, done := "exec sleep 1000\n", "exit 0\n"
		r := start(t, m, dir, "--log-format", "json", "--ready", "notify",
			"--ready", "exec:"+write("mainprobe", done),
			"--sidecar", "name=notifier ready=notify 'ready=exec:"+write("scprobe", done)+"' -- "+write("notifier", "systemd-notify --ready\n"+forever),
			"--sidecar", "name=before -- "+write("before", forever),
			"--sidecar", "name=after start=after -- "+write("after", forever),
			"--helper", write("helper", done),
			"--", "sh", script(t, dir, "main.sh", record("main")+"\nsystemd-notify --ready\ntrap 'exit 0' TERM\nwhile :; do sleep 0.05; done\n"))
		r.waitLog("main in the foreground")
		got := map[string]string{}
		for _, name := range []string{"main", "notifier", "before", "after", "helper", "mainprobe", "scprobe"} {
			got[name] = waitLine(t, filepath.Join(dir, name+".env"))
			if fds := waitLine(t, filepath.Join(dir, name+".fds")); fds != "0" {
				t.Errorf("%s has %s sockets among its descriptors, want 0", name, fds)
			}
		}
		if !strings.HasPrefix(got["main"], "@") || !strings.HasPrefix(got["notifier"], "@") || got["main"] == got["notifier"] {
			t.Errorf("NOTIFY_SOCKET of main %q and of the notify sidecar %q, want two different abstract sockets", got["main"], got["notifier"])
		}
		for _, name := range []string{"before", "after", "helper", "mainprobe", "scprobe"} {
			if got[name] != "none" {
				t.Errorf("%s: NOTIFY_SOCKET = %q, want none", name, got[name])
			}
		}
		if l := r.mustLog("main sent READY=1"); l.str("sidecar") != "" {
			t.Errorf("main's READY=1 record %v names a sidecar", l)
		}
		if l := r.mustLog("sidecar sent READY=1"); l.str("sidecar") != "notifier" {
			t.Errorf("the sidecar's READY=1 record %v, want sidecar notifier", l)
		}
		r.signal(unix.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Fatalf("mainstay exited %d, want 0", code)
		}
	})
}
