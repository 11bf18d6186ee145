package control

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mainstay-dev/mainstay/reaper/reapertest"
	"golang.org/x/sys/unix"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// Listen creates the missing directories, a socket every uid may connect
// to (access is per request), and a lock file no child inherits; Close
// removes the socket and keeps the lock file.
func TestListenAndClose(t *testing.T) {
	path := filepath.Join(reapertest.PublicDir(t), "run", "mainstay", "control.sock")
	srv, err := Listen(path, newFake(), discard)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		t.Fatalf("directory not created: %v", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket file mode %v, want a socket, 0666", fi.Mode())
	}
	if fi, err := os.Lstat(path + ".lock"); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("lock file: %v %v", fi, err)
	}
	if flags, err := unix.FcntlInt(uintptr(srv.sock.lock), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("lock descriptor inherited by children: flags %#x, %v", flags, err)
	}
	if _, err := dial(t, path).Status(testContext(t)); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Close: %v", err)
	}
	if _, err := os.Lstat(path + ".lock"); err != nil {
		t.Errorf("lock file after Close: %v", err)
	}
	if _, err := Dial(path); !errors.Is(err, ErrNoServer) || ExitCode(err) != ExitNoServer {
		t.Errorf("dial after Close: %v (exit %d)", err, ExitCode(err))
	}
	// Listen again on the same path, lock file in place.
	srv, err = Listen(path, newFake(), discard)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
}

// A second server on the same path fails while the first holds the lock,
// and leaves the first's socket serving.
func TestSecondServer(t *testing.T) {
	srv, _ := serve(t, newFake(), defaultLimits)
	_, err := Listen(srv.Path(), newFake(), discard)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), srv.Path()+".lock is locked") {
		t.Fatalf("second Listen: %v", err)
	}
	if _, err := dial(t, srv.Path()).Status(testContext(t)); err != nil {
		t.Fatalf("first server after the second's attempt: %v", err)
	}
	srv.Close()
	srv2, err := Listen(srv.Path(), newFake(), discard)
	if err != nil {
		t.Fatalf("Listen after the first closed: %v", err)
	}
	srv2.Close()
}

// A server SIGKILLed leaves its socket file; while it lives its lock
// keeps another away; once dead, the next Listen replaces the stale
// socket.
func TestStaleSocketAfterSIGKILL(t *testing.T) {
	path := socketPath(t)
	cmd := helperCmd(t, -1, "server", path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe() // held open: the helper serves until killed
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "listening\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper server: %q %v", line, err)
	}
	if _, err := Listen(path, newFake(), discard); !errors.Is(err, ErrInUse) {
		t.Errorf("Listen beside a live server in another process: %v", err)
	}
	if _, err := dial(t, path).Status(testContext(t)); err != nil {
		t.Errorf("the helper server: %v", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no stale socket left: %v %v", fi, err)
	}
	if _, err := Dial(path); !errors.Is(err, ErrNoServer) {
		t.Errorf("dial the stale socket: %v", err)
	}
	srv, err := Listen(path, newFake(), discard)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer srv.Close()
	if _, err := dial(t, path).Status(testContext(t)); err != nil {
		t.Errorf("the new server: %v", err)
	}
}

// Anything but a socket at the path, or anything but a regular file at
// the lock's, is refused with its name, and left as it was.
func TestForeignFiles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		at    string // "" the socket's path, ".lock" the lock file's
		make  func(t *testing.T, path, elsewhere string)
		error string
	}{
		{"regular file", "", func(t *testing.T, path, _ string) { write(t, path, "mine") }, "is a regular file"},
		{"symlink to a file", "", func(t *testing.T, path, elsewhere string) {
			write(t, elsewhere, "mine")
			symlink(t, elsewhere, path)
		}, "is a symlink"},
		{"dangling symlink", "", func(t *testing.T, path, elsewhere string) { symlink(t, elsewhere, path) }, "is a symlink"},
		{"symlink to a socket", "", func(t *testing.T, path, elsewhere string) {
			l, err := net.Listen("unix", elsewhere)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			symlink(t, elsewhere, path)
		}, "is a symlink"},
		{"directory", "", func(t *testing.T, path, _ string) { mkdir(t, path) }, "is a directory"},
		{"FIFO", "", func(t *testing.T, path, _ string) { mkfifo(t, path) }, "is a FIFO"},
		{"lock symlink", ".lock", func(t *testing.T, path, elsewhere string) {
			write(t, elsewhere, "mine")
			symlink(t, elsewhere, path)
		}, "is a symlink, not a lock file"},
		{"lock dangling symlink", ".lock", func(t *testing.T, path, elsewhere string) { symlink(t, elsewhere, path) }, "is a symlink, not a lock file"},
		{"lock directory", ".lock", func(t *testing.T, path, _ string) { mkdir(t, path) }, "is a directory, not a lock file"},
		{"lock FIFO", ".lock", func(t *testing.T, path, _ string) { mkfifo(t, path) }, "is a FIFO, not a lock file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := socketPath(t)
			elsewhere := filepath.Join(reapertest.PublicDir(t), "target")
			tc.make(t, path+tc.at, elsewhere)
			before := snapshot(t, path+tc.at, elsewhere)
			srv, err := Listen(path, newFake(), discard)
			if err == nil {
				srv.Close()
				t.Fatal("Listen succeeded")
			}
			if !strings.HasPrefix(err.Error(), path+tc.at+": ") || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("error %q, want it to name %s and say %q", err, path+tc.at, tc.error)
			}
			if after := snapshot(t, path+tc.at, elsewhere); after != before {
				t.Errorf("changed: before %s, after %s", before, after)
			}
		})
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes what is at each path: its type, mode, link target,
// content.
func snapshot(t *testing.T, paths ...string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			b.WriteString(p + ": " + err.Error() + "; ")
			continue
		}
		b.WriteString(p + ": " + fi.Mode().String())
		if fi.Mode().Type() == os.ModeSymlink {
			target, _ := os.Readlink(p)
			b.WriteString(" -> " + target)
		}
		if fi.Mode().IsRegular() {
			content, _ := os.ReadFile(p)
			b.WriteString(" " + string(content))
		}
		if fi.IsDir() {
			entries, _ := os.ReadDir(p)
			for _, e := range entries {
				b.WriteString(" " + e.Name())
			}
		}
		b.WriteString("; ")
	}
	return b.String()
}

// Paths Listen refuses before touching anything, and Dial's.
func TestBadPaths(t *testing.T) {
	for _, tc := range []struct{ path, error string }{
		{"", "empty path"},
		{"control.sock", "not an absolute path"},
		{"@mainstay", "an abstract socket is never used"},
		{"/" + strings.Repeat("x", 107) + ".sock", "too long for a unix socket"},
	} {
		if _, err := Listen(tc.path, newFake(), discard); err == nil || !strings.Contains(err.Error(), tc.error) {
			t.Errorf("Listen(%q): %v, want %q", tc.path, err, tc.error)
		}
	}
	if _, err := Dial("@mainstay"); err == nil || errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), "abstract") {
		t.Errorf("Dial of an abstract name: %v", err)
	}
	if _, err := Dial(filepath.Join(t.TempDir(), "none.sock")); !errors.Is(err, ErrNoServer) {
		t.Errorf("Dial of nothing: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	write(t, file, "")
	if _, err := Dial(filepath.Join(file, "control.sock")); !errors.Is(err, ErrNoServer) {
		t.Errorf("Dial under a file: %v", err)
	}
}

// Close removes the socket it bound, not one that took its place.
func TestCloseLeavesAnotherSocket(t *testing.T) {
	srv, _ := serve(t, newFake(), defaultLimits)
	other := filepath.Join(filepath.Dir(srv.Path()), "other.sock")
	l, err := net.Listen("unix", other)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Rename(other, srv.Path()); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if fi, err := os.Lstat(srv.Path()); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("the other socket after Close: %v %v", fi, err)
	}
}
