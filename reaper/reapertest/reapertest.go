package reapertest

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

var (
	runnerOnce sync.Once
	runner     *reaper.Reaper
)

// Runner returns the reaper of the test binary, started on the first call
// with a logger that discards its records. [reaper.Start] may be called once
// per process, so every test in the binary that starts a child must start it
// through this one reaper; a package's tests typically keep it in a package
// variable:
//
//	var runner = reapertest.Runner()
//
// When the reaper cannot start, Runner prints the error and exits the
// process with status 1.
func Runner() *reaper.Reaper {
	runnerOnce.Do(func() {
		r, err := reaper.Start(slog.New(slog.DiscardHandler))
		if err != nil {
			fmt.Fprintln(os.Stderr, "reaper.Start:", err)
			os.Exit(1)
		}
		runner = r
	})
	return runner
}

// Log collects the JSON log records of a logger made by [NewLog]. Tests read
// them to see what happened, such as which attempts a probe made, without
// sleeping. It is safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	recs []map[string]any
	bad  []string
}

// NewLog returns a debug-level JSON logger and the Log that collects what
// it writes.
func NewLog() (*slog.Logger, *Log) {
	l := &Log{}
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

// Write decodes p as one JSON log record and keeps it; slog writes one
// record per call. Write never fails: p when it is not JSON is kept too, and
// fails the test that next reads the Log.
func (l *Log) Write(p []byte) (int, error) {
	var rec map[string]any
	err := json.Unmarshal(p, &rec)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.bad = append(l.bad, string(p))
	} else {
		l.recs = append(l.recs, rec)
	}
	return len(p), nil
}

// Records returns every record so far, in the order they were written. It
// fails the test when anything written was not a JSON record.
func (l *Log) Records(t testing.TB) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) > 0 {
		t.Fatalf("log records that are not JSON: %q", l.bad)
	}
	return append([]map[string]any(nil), l.recs...)
}

// Find returns the records so far whose message is msg and which carry
// every attribute that attrs gives as pairs of key and string value, in the
// order they were written: Find(t, "probe failed", "probe", spec) returns the
// failures of probe spec. It fails the test when attrs holds an odd number
// of strings, or when anything written was not a JSON record.
func (l *Log) Find(t testing.TB, msg string, attrs ...string) []map[string]any {
	t.Helper()
	if len(attrs)%2 != 0 {
		t.Fatalf("Find(%q, %q): attrs must be pairs of key and value", msg, attrs)
	}
	var out []map[string]any
	for _, r := range l.Records(t) {
		if r["msg"] == msg && hasAttrs(r, attrs) {
			out = append(out, r)
		}
	}
	return out
}

// hasAttrs reports whether rec has each key of the key-value pairs attrs
// with its value.
func hasAttrs(rec map[string]any, attrs []string) bool {
	for i := 0; i < len(attrs); i += 2 {
		if rec[attrs[i]] != attrs[i+1] {
			return false
		}
	}
	return true
}

// WaitFor polls cond every millisecond until it holds, and fails the test
// when it still does not after 10s; what names the awaited condition in the
// failure.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// ReadPID waits, as [WaitFor] does, until file holds a PID written by a
// shell ("echo $! > file"), and returns it.
func ReadPID(t testing.TB, file string) int {
	t.Helper()
	var pid int
	WaitFor(t, "a PID in "+file, func() bool {
		b, err := os.ReadFile(file)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// ProcStart returns the start time of process pid from /proc/PID/stat
// (field 22), and false once the process is gone (reaped) or is a zombie.
// Two start times differ when the PID was reused by another process.
func ProcStart(pid int) (string, bool) {
	s, err := reaper.ReadStat(pid)
	if err != nil || s.Exited() {
		return "", false
	}
	return strconv.FormatUint(s.Start, 10), true
}

// Alive reports whether pid is a running process, not a zombie.
func Alive(pid int) bool {
	_, ok := ProcStart(pid)
	return ok
}

// WaitGone waits, as [WaitFor] does, until process pid, which had start time
// start (from [ProcStart] or [KillOnCleanup]), has died: /proc/PID is gone,
// is a zombie, or is another process (the PID was reused; the start time
// differs).
func WaitGone(t testing.TB, pid int, start string) {
	t.Helper()
	WaitFor(t, fmt.Sprintf("process %d to die", pid), func() bool {
		s, ok := ProcStart(pid)
		return !ok || s != start
	})
}

// KillOnCleanup makes sure that process pid, which the test started through
// a shell, does not outlive the test even when an assertion fails first:
// when the test ends, pid is killed with SIGKILL if it is still the process
// it is now. KillOnCleanup fails the test at once when pid is not running,
// and returns its start time for [WaitGone].
func KillOnCleanup(t testing.TB, pid int) string {
	t.Helper()
	start, ok := KillOnCleanupIfRunning(t, pid)
	if !ok {
		t.Fatalf("process %d is not running", pid)
	}
	return start
}

// KillOnCleanupIfRunning is [KillOnCleanup] for a process that may already
// have died: when pid is not running, nothing is killed, the test goes on,
// and it returns "" and false. Otherwise it returns pid's start time and
// true.
func KillOnCleanupIfRunning(t testing.TB, pid int) (start string, ok bool) {
	t.Helper()
	start, ok = ProcStart(pid)
	if ok {
		t.Cleanup(func() {
			if s, ok := ProcStart(pid); ok && s == start {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
	return start, ok
}

// PublicDir is a new directory (0755) that every user may enter, to put a
// program or a socket other uids must reach: t.TempDir's parents are
// root's alone. It is removed when the test ends.
func PublicDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mainstay-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
