//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogProbeOutputIntact: with a log: probe, main's output goes through
// mainstay and comes out the same bytes on the same stream — binary data,
// a partial line, a line longer than the matcher keeps — while the probe
// matches a line on stderr, and output keeps flowing after ready.
func TestLogProbeOutputIntact(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		var payload []byte
		for i := 0; i < 4; i++ {
			for b := 0; b < 256; b++ {
				payload = append(payload, byte(b))
			}
		}
		payload = append(payload, bytes.Repeat([]byte("L"), 200<<10)...) // one 200 KiB line
		if err := os.WriteFile(filepath.Join(dir, "payload"), payload, 0o644); err != nil {
			t.Fatal(err)
		}
		main := script(t, dir, "main.sh", `cat "$D/payload"
printf 'partial'
echo 'starting up' >&2
echo 'database system is ready to accept connections' >&2
while [ ! -e "$D/helper-ran" ]; do sleep 0.01; done
echo 'after ready' >&2
printf ' and the rest\n'
`)
		r := start(t, m, dir, "--log-format", "json",
			"--ready", "log:ready to accept connections$",
			"--helper", "touch "+filepath.Join(dir, "helper-ran"),
			"--", main)
		if code := r.wait(long); code != 0 {
			t.Fatalf("exit %d", code)
		}
		want := append(append([]byte{}, payload...), []byte("partial and the rest\n")...)
		got, _ := os.ReadFile(filepath.Join(dir, "mainstay.out"))
		if !bytes.Equal(got, want) {
			t.Errorf("stdout: %d bytes, want %d identical bytes (first difference at %d)", len(got), len(want), firstDiff(got, want))
		}
		var mainErr []string
		for _, l := range strings.Split(r.stderr(), "\n") {
			if l != "" && !strings.HasPrefix(l, "{") {
				mainErr = append(mainErr, l)
			}
		}
		if fmt.Sprint(mainErr) != fmt.Sprint([]string{"starting up", "database system is ready to accept connections", "after ready"}) {
			t.Errorf("main's stderr lines: %q", mainErr)
		}
		if l := r.mustLog("probe passed"); l.str("probe") != "log:ready to accept connections$" {
			t.Errorf("probe passed: %v", l)
		}
	})
}

// TestNoLogProbeInherits: without a log: probe main writes to mainstay's
// own stdout and stderr, not to pipes.
func TestNoLogProbeInherits(t *testing.T) {
	for _, withLog := range []bool{false, true} {
		t.Run(fmt.Sprint("log=", withLog), func(t *testing.T) {
			dir := t.TempDir()
			main := script(t, dir, "main.sh", `fd1=$(readlink /proc/$$/fd/1); fd2=$(readlink /proc/$$/fd/2)
echo "$fd1" > "$D/fd1"; echo "$fd2" > "$D/fd2"; echo ready`)
			args := []string{"--log-format", "json"}
			if withLog {
				args = append(args, "--ready", "log:^ready$")
			}
			r := start(t, modes[1], dir, append(args, "--", main)...)
			if code := r.wait(long); code != 0 {
				t.Fatalf("exit %d", code)
			}
			for _, fd := range []string{"fd1", "fd2"} {
				target := waitLine(t, filepath.Join(dir, fd))
				isPipe := strings.HasPrefix(target, "pipe:")
				if isPipe != withLog {
					t.Errorf("main's %s is %q; want a pipe only with a log: probe", fd, target)
				}
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
