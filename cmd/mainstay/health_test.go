package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// publish writes the files a mainstay in state publishes at path, as
// lifecycle's ready file does, naming this process as the mainstay.
func publish(t *testing.T, path, state string) {
	t.Helper()
	os.Remove(path)
	files := map[string]string{path + ".state": fmt.Sprintf("%s %d\n", state, os.Getpid())}
	if state == "ready" {
		files[path] = "ready\n"
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHealthCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	for _, tc := range []struct {
		state string
		code  int
	}{{"starting", 1}, {"ready", 0}, {"stopping", 1}} {
		publish(t, path, tc.state)
		var out, errOut bytes.Buffer
		if code := ctl("health", []string{"--ready-file", path}, &out, &errOut); code != tc.code || strings.TrimSpace(out.String()) != tc.state {
			t.Errorf("health in %s: exit %d, printed %q; want %d, %q", tc.state, code, out.String(), tc.code, tc.state)
		}
	}
	t.Setenv("MAINSTAY_READY_FILE", path)
	var out, errOut bytes.Buffer
	if code := ctl("health", nil, &out, &errOut); code != 1 || strings.TrimSpace(out.String()) != "stopping" {
		t.Errorf("health from MAINSTAY_READY_FILE: exit %d %q", code, out.String())
	}
	os.Remove(path + ".state")
	out.Reset()
	if code := ctl("health", nil, &out, &errOut); code != 1 || strings.TrimSpace(out.String()) != "gone" {
		t.Errorf("health after clear: exit %d %q", code, out.String())
	}
	// Without a ready file, health asks the control socket; nothing
	// answering there is "not healthy", exit 1 (never 3, nor 2, which
	// Docker reserves in HEALTHCHECK).
	os.Unsetenv("MAINSTAY_READY_FILE")
	out.Reset()
	sock := filepath.Join(t.TempDir(), "control.sock")
	if code := ctl("health", []string{"--control-socket", sock}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "no mainstay answers") {
		t.Errorf("health without a ready file nor a socket: exit %d, %q", code, errOut.String())
	}
	// Bad usage exits 1 too.
	errOut.Reset()
	if code := ctl("health", []string{"--level", "dead"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "--level") {
		t.Errorf("health --level dead: exit %d, %q", code, errOut.String())
	}
}

// TestHealthEmptyReadyFile: an empty MAINSTAY_READY_FILE counts as unset:
// health asks the socket.
func TestHealthEmptyReadyFile(t *testing.T) {
	t.Setenv("MAINSTAY_READY_FILE", "")
	t.Setenv("MAINSTAY_CONTROL_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	var out, errOut bytes.Buffer
	if code := ctl("health", nil, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "no mainstay answers at") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}

// TestHealthMissingValue: --ready-file with no value is one clear line and
// exit 1 (health's bad usage), not kong's "expected string value".
func TestHealthMissingValue(t *testing.T) {
	var out, errOut bytes.Buffer
	code := ctl("health", []string{"--ready-file"}, &out, &errOut)
	msg := errOut.String()
	if code != 1 || out.Len() != 0 || strings.Count(msg, "\n") != 1 ||
		!strings.HasPrefix(msg, "mainstay health: error: --ready-file: no value given") || strings.Contains(msg, "EOL") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), msg)
	}
}

// TestReadyFileVariableElsewhere: an image sets MAINSTAY_READY_FILE for its
// HEALTHCHECK; "docker exec C mainstay status" (any subcommand but health)
// and "health --level alive" then ask the socket as if it were unset,
// while the flag itself is still refused where it does not apply.
func TestReadyFileVariableElsewhere(t *testing.T) {
	t.Setenv("MAINSTAY_READY_FILE", filepath.Join(t.TempDir(), "ready"))
	t.Setenv("MAINSTAY_CONTROL_SOCKET", filepath.Join(t.TempDir(), "none.sock"))
	for _, tc := range []struct {
		op   string
		args []string
		code int
		err  string
	}{
		{"status", nil, 3, "no mainstay answers at"},
		{"restart", []string{"web"}, 3, "no mainstay answers at"},
		{"health", []string{"--level", "alive"}, 1, "no mainstay answers at"},
		{"status", []string{"--ready-file", "/x"}, 2, "--level and --ready-file are health's"},
		{"health", []string{"--level", "alive", "--ready-file", "/x"}, 1, "--level alive needs the control socket"},
	} {
		var out, errOut bytes.Buffer
		if code := ctl(tc.op, tc.args, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.err) {
			t.Errorf("%s %q: exit %d, stderr %q; want %d, %q", tc.op, tc.args, code, errOut.String(), tc.code, tc.err)
		}
	}
}
