//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelperPrefix: without a terminal each line a helper prints carries
// its name, on the stream it was written to; main's output is untouched.
// Mainstay's JSON lines carry the phase, probe, helper and exit code.
func TestHelperPrefix(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		r := start(t, m, dir, "--log-format", "json",
			"--ready", "file:/",
			"--helper", `sh -c 'echo one; echo two >&2; printf unfinished'`,
			"--helper", `echo three`,
			"--helper", "touch "+filepath.Join(dir, "done"),
			"--", "sh", "-c", `echo main says hi; while [ ! -e "$0/done" ]; do sleep 0.01; done`, dir)
		if code := r.wait(long); code != 0 {
			t.Fatalf("exit %d", code)
		}
		out, _ := os.ReadFile(filepath.Join(dir, "mainstay.out"))
		for _, want := range []string{"[sh] one\n", "[sh] unfinished\n", "[echo] three\n", "main says hi\n"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(string(out), "[sh] main") {
			t.Error("main's output was prefixed")
		}
		if !strings.Contains(r.stderr(), "[sh] two\n") {
			t.Errorf("stderr lacks the helper's prefixed line:\n%s", r.stderr())
		}
		if l := r.mustLog("probe passed"); l.str("phase") != "readiness" || l.str("probe") != "file:/" {
			t.Errorf("probe record: %v", l)
		}
		if l := r.mustLog("helper started"); l.str("phase") != "helpers" || l.str("helper") == "" {
			t.Errorf("helper record: %v", l)
		}
		if l := r.mustLog("main exited"); l.str("phase") != "stop" || l["exit_code"] == nil {
			t.Errorf("exit record: %v", l)
		}
	})
}

// TestHelperPrefixNotOnTerminal: on a terminal the helper keeps it as its
// output, unprefixed.
func TestHelperPrefixNotOnTerminal(t *testing.T) {
	dir := t.TempDir()
	r, term := startOnTerminal(t, modes[0], dir, "--log-format", "json",
		"--helper", `sh -c 'test -t 1 && echo helper-has-a-terminal; touch "$0/done"' `+dir,
		"--", "sh", "-c", `while [ ! -e "$0/done" ]; do sleep 0.01; done`, dir)
	if code := r.wait(long); code != 0 {
		t.Fatalf("exit %d", code)
	}
	out := strings.ReplaceAll(string(term.output()), "\r\n", "\n")
	if !strings.Contains(out, "\nhelper-has-a-terminal\n") && !strings.HasPrefix(out, "helper-has-a-terminal\n") {
		t.Errorf("terminal output lacks the helper's unprefixed line:\n%s", out)
	}
	if strings.Contains(out, "[sh]") {
		t.Errorf("helper output prefixed on a terminal:\n%s", out)
	}
}
