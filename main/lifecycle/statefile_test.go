package lifecycle

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReadyFileStates walks the published states through readState, which
// "mainstay health" prints.
func TestReadyFileStates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	check := func(want string, readyExists bool) {
		t.Helper()
		if got := mustReadState(t, path); got != want {
			t.Errorf("state %q, want %q", got, want)
		}
		if _, err := os.Stat(path); (err == nil) != readyExists {
			t.Errorf("ready file exists: %v, want %v", err == nil, readyExists)
		}
	}
	check(stateGone, false)
	// A stale ready file from an earlier run goes at start.
	os.WriteFile(path, []byte("ready\n"), 0o644)
	f := mustOpenReadyFile(t, path)
	if err := f.set(stateStarting); err != nil {
		t.Fatal(err)
	}
	check(stateStarting, false)
	if err := f.set(stateReady); err != nil {
		t.Fatal(err)
	}
	check(stateReady, true)
	if err := f.set(stateStopping); err != nil {
		t.Fatal(err)
	}
	check(stateStopping, false)
	// Once stopping, never ready again (a late "helpers done" loses).
	f.set(stateReady)
	check(stateStopping, false)
	f.clear()
	check(stateGone, false)
}

// TestReadyFileStale: a state file left by a mainstay that was killed
// (its PID is no longer running) reads as gone.
func TestReadyFileStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.ProcessState.Pid()
	os.WriteFile(path+".state", []byte("ready "+strconv.Itoa(dead)+"\n"), 0o644)
	os.WriteFile(path, []byte("ready\n"), 0o644)
	if got := mustReadState(t, path); got != stateGone {
		t.Errorf("state %q, want gone", got)
	}
}

func mustOpenReadyFile(t *testing.T, path string) *readyFile {
	t.Helper()
	f, err := openReadyFile("--ready-file", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.close)
	return f
}

func mustReadState(t *testing.T, path string) string {
	t.Helper()
	s, err := ReadState(path)
	if err != nil {
		t.Fatalf("ReadState: %v", err)
	}
	return s
}

// TestReadStateUntrusted: what main's user may put at PATH.state or PATH
// (a symlink to /dev/zero, a FIFO, a big file, garbage) is "not ready"
// with a reason, at once, never read without a bound or followed.
func TestReadStateUntrusted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string
	}{
		{"state a symlink to /dev/zero", func(t *testing.T, path string) { symlink(t, "/dev/zero", path+".state") }, "symbolic link"},
		{"state a FIFO", func(t *testing.T, path string) { mkfifoT(t, path+".state") }, "not a regular file"},
		{"state garbage", func(t *testing.T, path string) { writeTestFile(t, path+".state", "ready 1 and more\n") }, "not written by mainstay"},
		{"state big", func(t *testing.T, path string) { writeTestFile(t, path+".state", strings.Repeat("x", 1<<20)) }, "not written by mainstay"},
		{"ready file a symlink", func(t *testing.T, path string) {
			writeTestFile(t, path+".state", fmt.Sprintf("ready %d\n", os.Getpid()))
			symlink(t, "/dev/zero", path)
		}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ready")
			tc.setup(t, path)
			done := make(chan error, 1)
			go func() {
				_, err := ReadState(path)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("ReadState: %v, want an error with %q", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ReadState blocked")
			}
		})
	}
	if s, err := ReadState(filepath.Join(t.TempDir(), "nodir", "ready")); s != stateGone || err != nil {
		t.Errorf("no directory: %q, %v; want gone", s, err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func mkfifoT(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStateFileErrorNamesPath: a ready file that cannot be written (a
// full disk) is reported with the path the user gave, not the temporary
// file the write went to.
func TestStateFileErrorNamesPath(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4k"); err != nil {
		t.Fatalf("mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	// Fill it.
	if err := os.WriteFile(filepath.Join(dir, "fill"), make([]byte, 64<<10), 0o644); err == nil {
		t.Fatal("the 4k tmpfs took 64k")
	}
	path := filepath.Join(dir, "ready")
	f := mustOpenReadyFile(t, path)
	err := f.set(stateStarting)
	if err == nil || !strings.Contains(err.Error(), path+".state:") || strings.Contains(err.Error(), ".ready.state.") {
		t.Errorf("set on a full disk: %v, want an error naming %s.state, not the temporary file", err, path)
	}
}

// TestReadStateOtherProcess: a state file names the process that wrote
// it by PID and start time; a live process with that PID that started at
// another time (PID 1 again after "docker kill" and "docker start") is
// not it: "gone".
func TestReadStateOtherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	f := mustOpenReadyFile(t, path)
	if err := f.set(stateReady); err != nil {
		t.Fatal(err)
	}
	if got := mustReadState(t, path); got != stateReady {
		t.Fatalf("state %q, want ready", got)
	}
	pid, start := self()
	writeTestFile(t, path+".state", fmt.Sprintf("ready %d %d\n", pid, start+1))
	if got := mustReadState(t, path); got != stateGone {
		t.Errorf("state of another process with this PID: %q, want gone", got)
	}
}
