//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sharedDir is a temporary directory owned by user (so main, run as that
// user, can write it) that every user may enter; t.TempDir's parents are
// root's alone.
func sharedDir(t *testing.T, owner string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mainstay-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if owner != "" {
		u, err := user.Lookup(owner)
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// listing is dir's entries, with the content of each regular file.
func listing(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[e.Name()] = "-> " + l
		case e.Type().IsRegular():
			b, _ := os.ReadFile(p)
			out[e.Name()] = string(b)
		default:
			out[e.Name()] = e.Type().String()
		}
	}
	return out
}

func sameListing(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestStateDirSwapped is the measured attack: main, as an unprivileged
// user who can write the directory above --ready-file's and --once-marker's,
// swaps their directory for a symlink to a root-owned one. Root mainstay
// must neither create nor delete anything there, at ready time or at stop.
func TestStateDirSwapped(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		base := sharedDir(t, "nobody")
		run := filepath.Join(base, "run")
		if err := os.Mkdir(run, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(run, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		victim := sharedDir(t, "")
		writeFile(t, filepath.Join(victim, "ready"), "ready\n", 0o644)
		writeFile(t, filepath.Join(victim, "ready.state"), "ready 1\n", 0o644)
		before := listing(t, victim)

		main := script(t, base, "main.sh", `trap 'exit 0' TERM
mv "$D/run" "$D/run.old" && ln -s `+shQuote(victim)+` "$D/run" && echo $$ > "$D/main.pid"
while :; do sleep 0.05; done
`)
		r := start(t, m, dir, "--log-format", "json", "--user", "nobody",
			"--ready", "file:"+filepath.Join(base, "main.pid"), "--helper", "true",
			"--ready-file", filepath.Join(run, "ready"), "--once-marker", filepath.Join(run, "done"),
			"--", "sh", main)
		r.waitLog("ready file written")
		r.waitLog("once marker written")
		if got := listing(t, victim); !sameListing(got, before) {
			t.Errorf("victim directory changed once ready: %v, was %v", got, before)
		}
		moved := listing(t, filepath.Join(base, "run.old"))
		if moved["ready"] != "ready\n" || !strings.HasPrefix(moved["ready.state"], "ready ") || moved["done"] == "" {
			t.Errorf("the directory mainstay opened holds %v, want ready, ready.state and done", moved)
		}
		r.signal(15)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
		if got := listing(t, victim); !sameListing(got, before) {
			t.Errorf("victim directory changed at stop: %v, was %v", got, before)
		}
		if got := listing(t, filepath.Join(base, "run.old")); len(got) != 1 || got["done"] == "" {
			t.Errorf("after the stop the opened directory holds %v, want only the marker", got)
		}
	})
}

// TestStateFilesRefused: what mainstay did not write at --ready-file's
// paths, or a --once-marker that is not a regular file, is refused at
// start: exit 2, one line, nothing started, nothing changed.
func TestStateFilesRefused(t *testing.T) {
	cases := []struct {
		name string
		flag string
		make func(t *testing.T, path string)
		want string
	}{
		{"ready-other-file", "--ready-file", func(t *testing.T, p string) { writeFile(t, p, "precious\n", 0o644) }, "not written by mainstay"},
		{"ready-empty-dir", "--ready-file", func(t *testing.T, p string) { os.Mkdir(p, 0o755) }, "is a directory"},
		{"ready-symlink", "--ready-file", func(t *testing.T, p string) { os.Symlink("/etc/hostname", p) }, "is a symlink"},
		{"state-other-file", "--ready-file", func(t *testing.T, p string) { writeFile(t, p+".state", "x\n", 0o644) }, "not written by mainstay"},
		{"marker-symlink", "--once-marker", func(t *testing.T, p string) {
			writeFile(t, p+".target", "", 0o644)
			os.Symlink(p+".target", p)
		}, "is a symlink"},
		{"marker-dir", "--once-marker", func(t *testing.T, p string) { os.Mkdir(p, 0o755) }, "is a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				state := filepath.Join(dir, "state")
				if err := os.Mkdir(state, 0o755); err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(state, "x")
				c.make(t, path)
				before := listing(t, state)
				marker := filepath.Join(dir, "started")
				r := start(t, m, dir, "--log-format", "json", "--helper", "true", c.flag, path, "--", "touch", marker)
				if got := r.wait(long); got != 2 {
					t.Errorf("exit code %d, want 2", got)
				}
				checkPreflightLine(t, r, c.flag+": ")
				if !strings.Contains(r.stderr(), c.want) || !strings.Contains(r.stderr(), path) {
					t.Errorf("stderr %q does not name %s and say %q", r.stderr(), path, c.want)
				}
				if exists(marker) {
					t.Error("main was started")
				}
				if got := listing(t, state); !sameListing(got, before) {
					t.Errorf("directory changed: %v, was %v", got, before)
				}
			})
		})
	}
}

// TestStaleReadyFileReplaced: the ready file and state that a killed run
// left (they stay in the container layer across docker start) are mainstay's
// own: replaced, as before.
func TestStaleReadyFileReplaced(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		ready := filepath.Join(dir, "ready")
		writeFile(t, ready, "ready\n", 0o644)
		writeFile(t, ready+".state", "ready 1\n", 0o644)
		main := serverMain(t, dir, 0)
		r := start(t, m, dir, append(append([]string{"--log-format", "json", "--ready-file", ready}, mainReady(dir)...), "--", "sh", main)...)
		r.waitLog("ready file written")
		r.signal(15)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
		if exists(ready) || exists(ready+".state") {
			t.Error("ready file left behind")
		}
	})
}

// TestUserCannotExecute: a program root may run but the --user user may
// not is found before anything starts: 126.
func TestUserCannotExecute(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		base := sharedDir(t, "")
		marker := filepath.Join(base, "ran")
		prog := filepath.Join(base, "server")
		writeFile(t, prog, "#!/bin/sh\ntouch "+shQuote(marker)+"\n", 0o700)
		r := start(t, m, dir, "--log-format", "json", "--user", "nobody", "--", prog)
		if got := r.wait(long); got != 126 {
			t.Errorf("exit code %d, want 126", got)
		}
		checkPreflightLine(t, r, "main command: "+prog+": cannot execute: ")
		if exists(marker) {
			t.Error("main ran")
		}
	})
}

// TestHealthStateSwapped: main, as --user nobody in a directory it owns,
// replaces ready.state with a symlink to /dev/zero, then with a FIFO. A
// root "mainstay health" (a HEALTHCHECK) answers "not ready" at once,
// exit 1: it neither follows the link (once it grew to 447 MB reading
// /dev/zero) nor blocks on the FIFO.
func TestHealthStateSwapped(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		run := sharedDir(t, "nobody")
		rf := filepath.Join(run, "ready")
		main := script(t, run, "main.sh", `trap 'exit 0' TERM
echo $$ > "$D/main.pid"
while [ ! -e "$D/go.link" ]; do sleep 0.05; done
rm -f "$D/ready.state" && ln -s /dev/zero "$D/ready.state" && echo > "$D/linked"
while [ ! -e "$D/go.fifo" ]; do sleep 0.05; done
rm -f "$D/ready.state" && mkfifo "$D/ready.state" && echo > "$D/fifoed"
while :; do sleep 0.05; done
`)
		r := start(t, m, dir, "--log-format", "json", "--user", "nobody",
			"--ready", "file:"+filepath.Join(run, "main.pid"), "--ready-file", rf, "--", "sh", main)
		r.waitLog("ready file written")
		if out, code := healthWithin(t, r, rf); out != "ready" || code != 0 {
			t.Fatalf("health before the swap: %q, exit %d", out, code)
		}
		for _, step := range []struct{ trigger, done string }{{"go.link", "linked"}, {"go.fifo", "fifoed"}} {
			touch(t, filepath.Join(run, step.trigger))
			waitLine(t, filepath.Join(run, step.done))
			if out, code := healthWithin(t, r, rf); code != 1 || !strings.HasPrefix(out, "not ready: ") {
				t.Errorf("health with ready.state %s: %q, exit %d; want not ready, exit 1", step.done, out, code)
			}
		}
		r.signal(15)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
	})
}

// healthWithin runs "mainstay health" inside mainstay's namespaces, as
// root, and fails the test when it takes more than 5 s.
func healthWithin(t *testing.T, r *run, readyFile string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(r.PID()), "--pid", "--mount", "--",
		bin, "health", "--ready-file", readyFile).Output()
	if ctx.Err() != nil {
		t.Fatalf("mainstay health did not answer within 5s")
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mainstay health: %v", err)
	}
	return strings.TrimSpace(string(out)), code
}

// TestHealthAfterKillAndStart: "docker kill" leaves the state files of a
// mainstay that was PID 1; after "docker start" a new PID 1 runs before
// the new mainstay writes anything. health must say gone, not the killed
// run's ready: the state names the process by PID and start time.
func TestHealthAfterKillAndStart(t *testing.T) {
	m := mode{"pid1", true}
	if unshareErr != nil {
		t.Fatalf("needs a new PID namespace (root): %v", unshareErr)
	}
	dir := t.TempDir()
	rf := filepath.Join(dir, "ready")
	main := script(t, dir, "main.sh", `echo $$ > "$D/main.pid"; while :; do sleep 0.05; done`)
	r := start(t, m, dir, "--log-format", "json", "--ready", "file:"+filepath.Join(dir, "main.pid"), "--ready-file", rf, "--", "sh", main)
	r.waitLog("ready file written")
	r.signal(syscall.SIGKILL) // docker kill: mainstay, PID 1, dies first
	r.wait(long)
	b, err := os.ReadFile(rf + ".state")
	if err != nil || !strings.HasPrefix(string(b), "ready 1") {
		t.Fatalf("the killed run left %q (%v), want its ready state as PID 1", b, err)
	}
	// docker start: a new namespace whose PID 1 is alive, then health.
	out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
		"sh", "-c", `sleep 0.2 & exec "$0" health --ready-file "$1"`, bin, rf).Output()
	if got := strings.TrimSpace(string(out)); got != "gone" {
		t.Errorf("health in a new namespace with PID 1 alive: %q (%v), want gone", got, err)
	}
}
