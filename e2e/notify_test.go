//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// --ready notify: main says READY=1 on $NOTIFY_SOCKET (the systemd
// notification protocol), and the wait ends then, without polling.

// TestNotifyPostgres: Debian's PostgreSQL is built with libsystemd and
// sends READY=1 once it accepts connections. The migration runs at that
// moment, the server never answers "the database system is starting up"
// (nothing polled it), and STOPPING=1 arrives when it shuts down.
func TestNotifyPostgres(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		p := newPG(t)
		migrate := p.file("001_schema.sql", schema)
		readyFile := filepath.Join(p.dir, "ready")
		r := start(t, m, p.dir, "--log-format", "json", "--user", "postgres", "--stop-signal", "SIGINT", "--grace", "20s",
			"--ready", "notify", "--ready-file", readyFile, "--helper", p.psql(migrate),
			"--", filepath.Join(p.bin, "postgres"), "-D", p.data, "-p", strconv.Itoa(p.port),
			"-c", "listen_addresses=127.0.0.1", "-k", p.sock)
		waitFor(t, long, "the ready file", func() bool { return exists(readyFile) })
		if out, err := p.query("SELECT count(*) FROM products"); err != nil || out != "0" {
			t.Fatalf("the migration's table: %q, %v", out, err)
		}
		notified := r.mustLog("main sent READY=1")
		if passed := r.mustLog("probe passed"); passed.str("probe") != "notify" || passed.num("attempt") != 1 {
			t.Errorf("probe passed: %v, want notify at attempt 1", passed)
		}
		r.mustNotLog("probe failed")
		helper := r.mustLog("helper started")
		if notified != nil && helper != nil && helper.time().Before(notified.time()) {
			t.Errorf("helper started at %s, before READY=1 at %s", helper.time(), notified.time())
		}

		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Fatalf("mainstay exited %d after SIGTERM, want 0", code)
		}
		r.mustLog("main sent STOPPING=1")
		log := r.stderr()
		if strings.Contains(log, "the database system is starting up") {
			t.Errorf("postgres logged \"the database system is starting up\":\n%s", log)
		}
		for _, want := range []string{"database system is ready to accept connections", "database system is shut down"} {
			if !strings.Contains(log, want) {
				t.Errorf("postgres did not log %q", want)
			}
		}
	})
}

// TestNotifyRedis: redis-server --supervised systemd sends READY=1 once it
// accepts commands, after loading its dataset: a first run saves a million
// keys, and in the second the SET helper (with -e, so LOADING fails it)
// succeeds at once.
func TestNotifyRedis(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := dbDir(t, "redis")
		port := freePort(t)
		cli := fmt.Sprintf("redis-cli -e -h 127.0.0.1 -p %d", port)
		seedDir := t.TempDir()
		seed := start(t, m, seedDir, "--log-format", "json", "--user", "redis",
			"--ready", fmt.Sprintf("exec:%s ping", cli),
			"--helper", cli+" DEBUG POPULATE 1000000", "--helper", cli+" SAVE",
			"--", "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", dir, "--save", "", "--appendonly", "no", "--enable-debug-command", "yes")
		seed.waitLog("main in the foreground")
		seed.signal(syscall.SIGTERM)
		if code := seed.wait(long); code != 0 {
			t.Fatalf("seeding run exited %d", code)
		}
		readyFile := filepath.Join(dir, "ready")
		r := start(t, m, dir, "--log-format", "json", "--user", "redis",
			"--ready", "notify", "--ready-file", readyFile,
			"--helper", cli+" SET greeting 'hello, world'",
			"--", "redis-server", "--supervised", "systemd", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", dir, "--save", "3600 1", "--appendonly", "no")
		waitFor(t, long, "the ready file", func() bool { return exists(readyFile) })
		r.mustLog("main sent READY=1")
		r.mustNotLog("probe failed")
		if st := r.logsWith("main status"); len(st) == 0 || st[0].str("status") != "Redis is loading..." {
			t.Errorf("redis's STATUS= lines %v, want Redis is loading... first", st)
		}
		if out := readFile(filepath.Join(dir, "mainstay.out")); !strings.Contains(out, "keys loaded: 1000000") {
			t.Errorf("redis did not load the million keys:\n%s", out)
		}
		out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "GET", "greeting").Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != "hello, world" {
			t.Errorf("GET greeting = %q, %v", got, err)
		}
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Fatalf("mainstay exited %d after SIGTERM, want 0", code)
		}
		mustSayBye(t, r, dir)
	})
}

// mustSayBye fails the test unless redis, main or a sidecar, logged its
// clean shutdown (to mainstay's stdout or stderr, in dir).
func mustSayBye(t *testing.T, r *run, dir string) {
	t.Helper()
	if !strings.Contains(r.stderr()+readFile(filepath.Join(dir, "mainstay.out")), "ready to exit, bye bye") {
		t.Error("redis did not shut down cleanly")
	}
}

// needSystemdNotify fails the test when systemd-notify, the sd_notify
// client the tests' shell scripts run, is missing.
func needSystemdNotify(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("systemd-notify"); err != nil {
		t.Fatal("systemd-notify not installed: run e2e/setup.sh")
	}
}

// TestNotifyShellMain: a shell main, as another user, announces itself
// with systemd-notify --ready (which waits until mainstay closes the
// descriptor it sends), then STOPPING=1 turns health to stopping while
// main still runs. The helper and the exec probe see no NOTIFY_SOCKET.
func TestNotifyShellMain(t *testing.T) {
	needSystemdNotify(t)
	eachMode(t, func(t *testing.T, m mode) {
		dir := dbDir(t, "nobody")
		readyFile := filepath.Join(dir, "ready")
		main := script(t, dir, "main.sh", `echo "${NOTIFY_SOCKET:-none}" > "$D/main.env"
systemd-notify --ready --status="serving" && touch "$D/notified"
while [ ! -e "$D/stop" ]; do sleep 0.01; done
systemd-notify STOPPING=1 && touch "$D/stopping"
trap 'exit 0' TERM
while :; do sleep 0.05; done
`)
		r := start(t, m, dir, "--log-format", "json", "--user", "nobody",
			"--ready", "notify", "--ready", `exec:sh -c 'echo "${NOTIFY_SOCKET:-none}" > "$0/probe.env"' `+dir,
			"--ready-file", readyFile,
			"--helper", `sh -c 'echo "${NOTIFY_SOCKET:-none}" > "$0/helper.env"' `+dir,
			"--", main)
		waitFor(t, long, "the ready file", func() bool { return exists(readyFile) })
		// systemd-notify exits 0 only once its barrier descriptor is closed.
		waitFor(t, short, "systemd-notify --ready to exit 0", func() bool { return exists(filepath.Join(dir, "notified")) })
		if got := waitLine(t, filepath.Join(dir, "main.env")); !strings.HasPrefix(got, "@") {
			t.Errorf("main's NOTIFY_SOCKET = %q, want an abstract socket @...", got)
		}
		for _, f := range []string{"helper.env", "probe.env"} {
			if got := waitLine(t, filepath.Join(dir, f)); got != "none" {
				t.Errorf("%s: NOTIFY_SOCKET = %q, want none", f, got)
			}
		}
		if st := r.logsWith("main status"); len(st) != 1 || st[0].str("status") != "serving" {
			t.Errorf("status records %v, want one with serving", st)
		}
		if state, code := health(t, r, readyFile); state != "ready" || code != 0 {
			t.Errorf("health: %q exit %d, want ready exit 0", state, code)
		}
		touch(t, filepath.Join(dir, "stop"))
		waitFor(t, short, "STOPPING=1 sent", func() bool { return exists(filepath.Join(dir, "stopping")) })
		r.waitLog("main sent STOPPING=1")
		waitFor(t, short, "health to say stopping", func() bool {
			state, code := health(t, r, readyFile)
			return state == "stopping" && code == 1
		})
		if r.exited() {
			t.Fatal("mainstay exited on STOPPING=1: it only reports, main decides")
		}
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Fatalf("mainstay exited %d, want 0", code)
		}
	})
}

// TestNotifyMainExitsFirst: main exits before READY=1; mainstay fails
// fast with main's code, as for every probe.
func TestNotifyMainExitsFirst(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		r := start(t, m, dir, "--log-format", "json", "--ready", "notify", "--ready-timeout", "0",
			"--", "sh", "-c", "exit 7")
		if code := r.wait(short); code != 7 {
			t.Fatalf("exit %d, want main's 7", code)
		}
	})
}

// upstream is a NOTIFY_SOCKET that the test listens on, as systemd or
// podman --sdnotify=container would.
type upstream struct {
	addr string
	mu   sync.Mutex
	msgs []string
}

func listenUpstream(t *testing.T, dir string) *upstream {
	t.Helper()
	u := &upstream{addr: filepath.Join(dir, "notify.sock")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: u.addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			u.mu.Lock()
			u.msgs = append(u.msgs, string(buf[:n]))
			u.mu.Unlock()
		}
	}()
	return u
}

func (u *upstream) received() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.msgs...)
}

// TestNotifyUpstream: mainstay started with NOTIFY_SOCKET (podman
// --sdnotify=container, a systemd unit of Type=notify) says READY=1 there
// once main is ready and the helpers are done, and STOPPING=1 when the
// stop begins. No child inherits that socket; with --ready notify main
// gets mainstay's own instead.
func TestNotifyUpstream(t *testing.T) {
	for _, tt := range []struct {
		name   string
		notify bool
	}{{"polled probe", false}, {"notify probe", true}} {
		t.Run(tt.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				up := listenUpstream(t, dir)
				main := script(t, dir, "main.sh", `echo "${NOTIFY_SOCKET:-none}" > "$D/main.env"
[ "$1" = notify ] && systemd-notify --ready
trap 'exit 0' TERM
while :; do sleep 0.05; done
`)
				ready := []string{"--ready", "file:" + filepath.Join(dir, "main.env")}
				arg := "poll"
				if tt.notify {
					ready, arg = []string{"--ready", "notify"}, "notify"
				}
				// The helper holds start-up until the test has looked.
				hold := script(t, dir, "hold.sh", `echo "${NOTIFY_SOCKET:-none}" > "$D/helper.env"
while [ ! -e "$D/release" ]; do sleep 0.01; done`)
				args := append([]string{"--log-format", "json"}, ready...)
				args = append(args,
					"--ready", `exec:sh -c 'echo "${NOTIFY_SOCKET:-none}" > "$0/probe.env"' `+dir,
					"--helper", hold, "--", main, arg)
				r := startWith(t, m, dir, config{env: []string{"NOTIFY_SOCKET=" + up.addr}}, args...)
				for _, f := range []string{"helper.env", "probe.env"} {
					if got := waitLine(t, filepath.Join(dir, f)); got != "none" {
						t.Errorf("%s: NOTIFY_SOCKET = %q, want none", f, got)
					}
				}
				got := waitLine(t, filepath.Join(dir, "main.env"))
				switch {
				case !tt.notify && got != "none":
					t.Errorf("main's NOTIFY_SOCKET = %q, want none without --ready notify", got)
				case tt.notify && (got == up.addr || !strings.HasPrefix(got, "@")):
					t.Errorf("main's NOTIFY_SOCKET = %q, want mainstay's own @... (not %q)", got, up.addr)
				}
				r.waitLog("helper started")
				if msgs := up.received(); len(msgs) != 0 {
					t.Errorf("upstream got %q while a helper still runs", msgs)
				}
				touch(t, filepath.Join(dir, "release"))
				waitFor(t, short, "READY=1 upstream", func() bool { return len(up.received()) == 1 })
				if msgs := up.received(); msgs[0] != "READY=1" {
					t.Errorf("upstream got %q, want READY=1", msgs)
				}
				r.signal(syscall.SIGTERM)
				if code := r.wait(long); code != 0 {
					t.Fatalf("mainstay exited %d, want 0", code)
				}
				waitFor(t, short, "a second message upstream", func() bool { return len(up.received()) >= 2 })
				if msgs := up.received(); len(msgs) != 2 || msgs[1] != "STOPPING=1" {
					t.Errorf("upstream got %q, want READY=1 then STOPPING=1", msgs)
				}
				_ = os.Remove(up.addr)
			})
		})
	}
}

// TestNotifyBadSpec: notify takes no argument, and a spec that can never
// pass is refused: exit 2, the flag and the value named, nothing started.
func TestNotifyBadSpec(t *testing.T) {
	for _, spec := range []string{"notify:x", "notify:", "tcp://6379", "tcp:a/b:80", "unix://x.sock", "http://a!b/"} {
		t.Run(spec, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				marker := filepath.Join(dir, "started")
				r := start(t, m, dir, "--log-format", "json", "--ready", spec, "--", "touch", marker)
				if got := r.wait(long); got != 2 {
					t.Errorf("exit code %d, want 2", got)
				}
				if exists(marker) {
					t.Error("main was started")
				}
				checkUsageLine(t, r.stderr(), []string{"--ready"}, spec)
			})
		})
	}
}
