package readiness_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
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
// once per process, and exec probes must start through it.
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

// logBuffer collects JSON log records; tests read them to see which probe
// attempts happened, without sleeping. slog writes one record per Write.
type logBuffer struct {
	mu      sync.Mutex
	records []map[string]any
	bad     []string
}

func (b *logBuffer) Write(p []byte) (int, error) {
	var rec map[string]any
	err := json.Unmarshal(p, &rec)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.bad = append(b.bad, string(p))
	} else {
		b.records = append(b.records, rec)
	}
	return len(p), nil
}

// find returns the records with message msg for probe (any probe when "").
func (b *logBuffer) find(t *testing.T, msg, probe string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bad) > 0 {
		t.Fatalf("log records that are not JSON: %q", b.bad)
	}
	var out []map[string]any
	for _, r := range b.records {
		if r["msg"] == msg && (probe == "" || r["probe"] == probe) {
			out = append(out, r)
		}
	}
	return out
}

// newLog returns a debug-level JSON logger writing to a fresh logBuffer.
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

// closedPort returns a 127.0.0.1 address nothing listens on: listen, then close.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// listen opens a listener on addr ("127.0.0.1:0" for any port) that is
// closed when the test ends.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// readPID waits until file holds a PID written by a shell ("echo $! > file")
// and returns it.
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

// procStart returns the start time of pid from /proc/PID/stat (field 22),
// and false once the process is gone (reaped) or is a zombie.
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

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	_, ok := procStart(pid)
	return ok
}

// waitGone waits until the process pid, alive when it was observed by the
// caller, has died: /proc/PID is gone, a zombie, or another process (the
// PID was reused; the start time differs).
func waitGone(t *testing.T, pid int, start string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("process %d to die", pid), func() bool {
		s, ok := procStart(pid)
		return !ok || s != start
	})
}

// killOnCleanup makes sure a process the test started through a shell does
// not outlive the test even when an assertion failed first.
func killOnCleanup(t *testing.T, pid int) {
	t.Helper()
	start, ok := procStart(pid)
	t.Cleanup(func() {
		if s, ok2 := procStart(pid); ok && ok2 && s == start {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}
