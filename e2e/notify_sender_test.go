//go:build e2e

package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Who sends to main's notify socket: an outsider flooding it, another
// process of main's user. The socket is abstract, so anyone in the
// network namespace who reads its address in /proc/net/unix can write.

// flooder starts, as nobody and outside mainstay's tree, a Perl loop that
// sends to the abstract socket addr ("@..."), as fast as it takes them,
// messages that would count from main; it stops with the test or when the
// socket is gone.
func flooder(t *testing.T, addr string) {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"perl", "-MSocket", "-e", `
socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
my $to = pack_sockaddr_un("\0" . substr($ARGV[0], 1));
send($s, "READY=1\nSTOPPING=1\nSTATUS=flood", 0, $to) or die "send: $!" while 1;`, addr)
	if err := cmd.Start(); err != nil {
		t.Fatalf("flooder: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// TestNotifyFlood: a process of another user floods main's socket. One
// line says so, the rest is counted (a line every 10 s, or when the socket
// closes); main's own READY=1 still lands at once, and the flood's
// STOPPING=1 changes nothing.
func TestNotifyFlood(t *testing.T) {
	needSystemdNotify(t)
	eachMode(t, func(t *testing.T, m mode) {
		dir := dbDir(t, "nobody")
		readyFile := filepath.Join(dir, "ready")
		main := script(t, dir, "main.sh", `echo "$NOTIFY_SOCKET" > "$D/main.sock"
while [ ! -e "$D/go" ]; do sleep 0.01; done
systemd-notify --ready
trap 'exit 0' TERM
while :; do sleep 0.05; done
`)
		r := start(t, m, dir, "--log-format", "json", "--ready", "notify", "--ready-file", readyFile, "--", main)
		flooder(t, waitLine(t, filepath.Join(dir, "main.sock")))
		const refused = "notify message refused: the sender is neither in main's process tree nor main's user"
		r.waitLog(refused)
		// The condition waited for is time itself: a second of flood.
		flooding := time.Now()
		waitFor(t, short, "a second of flood", func() bool { return time.Since(flooding) > time.Second })

		touch(t, filepath.Join(dir, "go"))
		told := time.Now()
		ready := r.waitLog("main sent READY=1")
		// main.sh polls for go every 10 ms, and starts systemd-notify.
		if took := ready.time().Sub(told); took > time.Second {
			t.Errorf("main's READY=1 logged %s after main was told to send it, want less than 1s", took)
		}
		waitFor(t, short, "the ready file", func() bool { return exists(readyFile) })
		if state, _ := health(t, r, readyFile); state != "ready" {
			t.Errorf("health %q under the flood, want ready: its STOPPING=1 counts for nothing", state)
		}
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Fatalf("mainstay exited %d, want 0", code)
		}
		if n := len(r.logsWith(refused)); n != 1 {
			t.Errorf("%d refusals logged in full, want 1", n)
		}
		counts := r.logsWith("notify messages refused")
		if len(counts) == 0 || counts[0].num("count") < 100 {
			t.Errorf("count lines %v, want the flood counted (100 messages or more)", counts)
		}
		r.mustNotLog("main sent STOPPING=1")
		// Each 10 s adds a count line; the run takes far less.
		if lines := strings.Split(r.stderr(), "\n"); len(lines) > 20 {
			t.Errorf("stderr has %d lines, want a handful; the first 20:\n%s", len(lines), strings.Join(lines[:20], "\n"))
		}
		for _, c := range counts {
			t.Logf("%s", c)
		}
	})
}

// TestNotifySameUserStopping: a sidecar running as main's user sends
// STOPPING=1 to main's socket. It is believed for its user, so the line
// says what it is, "a process of main's user", with its own PID; and only
// main or its descendants may say main is stopping, so health stays ready.
func TestNotifySameUserStopping(t *testing.T) {
	needSystemdNotify(t)
	eachMode(t, func(t *testing.T, m mode) {
		dir := dbDir(t, "nobody")
		readyFile := filepath.Join(dir, "ready")
		main := script(t, dir, "main.sh", `echo "$NOTIFY_SOCKET" > "$D/main.sock"
systemd-notify --ready
trap 'exit 0' TERM
while :; do sleep 0.05; done
`)
		other := script(t, dir, "other.sh", `while [ ! -s "$D/main.sock" ]; do sleep 0.01; done
NOTIFY_SOCKET=$(cat "$D/main.sock") systemd-notify STOPPING=1 && touch "$D/sent"
exec sleep 1000
`)
		r := start(t, m, dir, "--log-format", "json", "--user", "nobody", "--ready", "notify", "--ready-file", readyFile,
			"--sidecar", "name=other start=after -- "+other, "--", main)
		waitFor(t, long, "the sidecar's STOPPING=1", func() bool { return exists(filepath.Join(dir, "sent")) })
		l := r.waitLog("a process of main's user sent STOPPING=1; ignored: only main and its descendants may say it is stopping")
		mainPID := r.mustLog("main started").num("pid")
		if l.num("pid") <= 0 || l.num("pid") == mainPID {
			t.Errorf("STOPPING=1 line %v, want the sender's own PID, not main's %d", l, mainPID)
		}
		r.mustNotLog("main sent STOPPING=1")
		if state, code := health(t, r, readyFile); state != "ready" || code != 0 {
			t.Errorf("health %q exit %d after another process's STOPPING=1, want ready exit 0", state, code)
		}
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Fatalf("mainstay exited %d, want 0", code)
		}
	})
}
