package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestReadyFileStates walks the published states through readState, which
// "mainstay health" prints.
func TestReadyFileStates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	check := func(want string, readyExists bool) {
		t.Helper()
		if got := readState(path); got != want {
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
	if got := readState(path); got != stateGone {
		t.Errorf("state %q, want gone", got)
	}
}

func TestHealthCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	f := mustOpenReadyFile(t, path)
	for _, tc := range []struct {
		state string
		code  int
	}{{stateStarting, 1}, {stateReady, 0}, {stateStopping, 1}} {
		f.set(tc.state)
		var out, errOut bytes.Buffer
		if code := health([]string{"--ready-file", path}, &out, &errOut); code != tc.code || strings.TrimSpace(out.String()) != tc.state {
			t.Errorf("health in %s: exit %d, printed %q; want %d, %q", tc.state, code, out.String(), tc.code, tc.state)
		}
	}
	t.Setenv("MAINSTAY_READY_FILE", path)
	var out, errOut bytes.Buffer
	if code := health(nil, &out, &errOut); code != 1 || strings.TrimSpace(out.String()) != stateStopping {
		t.Errorf("health from MAINSTAY_READY_FILE: exit %d %q", code, out.String())
	}
	f.clear()
	out.Reset()
	if code := health(nil, &out, &errOut); code != 1 || strings.TrimSpace(out.String()) != stateGone {
		t.Errorf("health after clear: exit %d %q", code, out.String())
	}
	// Bad usage exits 1, not 2, which Docker reserves in HEALTHCHECK.
	os.Unsetenv("MAINSTAY_READY_FILE")
	errOut.Reset()
	if code := health(nil, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "--ready-file") {
		t.Errorf("health without a ready file: exit %d, %q", code, errOut.String())
	}
}

// TestHealthEmptyReadyFile: an empty MAINSTAY_READY_FILE is bad usage, not
// "gone".
func TestHealthEmptyReadyFile(t *testing.T) {
	t.Setenv("MAINSTAY_READY_FILE", "")
	var out, errOut bytes.Buffer
	if code := health(nil, &out, &errOut); code != 1 || out.Len() != 0 || !strings.Contains(errOut.String(), "no ready file") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
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

// TestHealthMissingValue: --ready-file with no value is one clear line and
// exit 1 (health's bad usage), not kong's "expected string value".
func TestHealthMissingValue(t *testing.T) {
	var out, errOut bytes.Buffer
	code := health([]string{"--ready-file"}, &out, &errOut)
	msg := errOut.String()
	if code != 1 || out.Len() != 0 || strings.Count(msg, "\n") != 1 ||
		!strings.HasPrefix(msg, "mainstay health: error: --ready-file: no value given") || strings.Contains(msg, "EOL") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), msg)
	}
}
