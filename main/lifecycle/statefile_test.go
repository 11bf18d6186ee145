package lifecycle

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestReadyFileStates walks the published states through readState, which
// "mainstay health" prints.
func TestReadyFileStates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	check := func(want string, readyExists bool) {
		t.Helper()
		if got := ReadState(path); got != want {
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
	if got := ReadState(path); got != stateGone {
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
