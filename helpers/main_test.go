package helpers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/reaper"
)

// runner is the one reaper of this test binary: reaper.Start may be called
// once per process, and helpers must start through it.
var runner *reaper.Reaper

func TestMain(m *testing.M) {
	r, err := reaper.Start(slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, "reaper.Start:", err)
		os.Exit(1)
	}
	runner = r
	os.Exit(m.Run())
}

// logBuffer collects JSON log records; slog writes one record per Write.
type logBuffer struct {
	mu   sync.Mutex
	recs []map[string]any
	bad  []string
}

func (b *logBuffer) Write(p []byte) (int, error) {
	var rec map[string]any
	err := json.Unmarshal(p, &rec)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.bad = append(b.bad, string(p))
	} else {
		b.recs = append(b.recs, rec)
	}
	return len(p), nil
}

// records returns every record so far.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bad) > 0 {
		t.Fatalf("log records that are not JSON: %q", b.bad)
	}
	return append([]map[string]any(nil), b.recs...)
}

// find returns the records with message msg.
func (b *logBuffer) find(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bad) > 0 {
		t.Fatalf("log records that are not JSON: %q", b.bad)
	}
	var out []map[string]any
	for _, r := range b.recs {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// readPID waits until file holds a PID written by a shell ("echo $! > file").
func readPID(t *testing.T, file string) int {
	t.Helper()
	var pid int
	waitFor(t, "a PID in "+file, func() bool {
		b, err := os.ReadFile(file)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// procStart returns the start time of pid (field 22 of /proc/PID/stat), and
// false once the process is gone or a zombie.
func procStart(pid int) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, the state
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return "", false
	}
	return f[19], true
}

// waitGone waits until process pid, which had start time start, has died
// (gone, a zombie, or its PID reused by another process).
func waitGone(t *testing.T, pid int, start string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("process %d to die", pid), func() bool {
		s, ok := procStart(pid)
		return !ok || s != start
	})
}

// killOnCleanup kills pid when the test ends, if it is still the same process.
func killOnCleanup(t *testing.T, pid int) string {
	t.Helper()
	start, ok := procStart(pid)
	if !ok {
		t.Fatalf("process %d is not running", pid)
	}
	t.Cleanup(func() {
		if s, ok := procStart(pid); ok && s == start {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return start
}
