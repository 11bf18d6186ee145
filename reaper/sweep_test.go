package reaper

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testLog collects the JSON records the shared reaper logs (Info and up).
var testLog = &records{}

type records struct {
	mu   sync.Mutex
	recs []map[string]any
}

// Write keeps p, one JSON record (slog writes one a call).
func (l *records) Write(p []byte) (int, error) {
	var rec map[string]any
	if err := json.Unmarshal(p, &rec); err != nil {
		rec = map[string]any{"msg": "not JSON: " + string(p)}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, rec)
	return len(p), nil
}

// find returns the records so far whose message is msg.
func (l *records) find(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, r := range l.recs {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// TestSweepNamesLeftovers: the sweep names the processes it stops, by PID
// and command line, the first five of them, and counts the others.
func TestSweepNamesLeftovers(t *testing.T) {
	if !isolated() {
		t.Run("subreaper", func(t *testing.T) { runIsolated(t, "TestSweepNamesLeftovers", false) })
		t.Run("pid1", func(t *testing.T) { runIsolated(t, "TestSweepNamesLeftovers", true) })
		return
	}
	const n = 7
	dir := t.TempDir()
	// Each sleep has a length of its own, which tells them apart.
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do sleep $((1000+i)) & echo $! > "%s/$i"; i=$((i+1)); done; wait`, n, dir)
	p, err := shared.Start(Spec{Argv: []string{"sh", "-c", script}, Env: os.Environ()})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{} // PID: command line
	for i := range n {
		file := filepath.Join(dir, strconv.Itoa(i))
		var pid int
		waitFor(t, 5*time.Second, file, func() bool {
			b, err := os.ReadFile(file)
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			return err == nil && strings.HasSuffix(string(b), "\n") && pid > 0
		})
		want[pid] = fmt.Sprintf("sleep %d", 1000+i)
		// Until it has exec'd, its command line is not sleep's yet.
		waitFor(t, 5*time.Second, "sleep's exec", func() bool {
			st, err := ReadStat(pid)
			return err == nil && st.Command() == want[pid]
		})
	}
	// The parent exits: its children become our orphans.
	p.Signal(unix.SIGKILL)
	p.Wait()

	if left := shared.Sweep(time.Now().Add(10 * time.Second)); left != 0 {
		t.Errorf("Sweep gave up on %d processes", left)
	}
	if ls := testLog.find("stopping leftover processes"); len(ls) != 1 || ls[0]["count"] != float64(n) {
		t.Errorf("logged %v, want one line with count %d", ls, n)
	}
	named := testLog.find("leftover process")
	if len(named) != 5 {
		t.Errorf("%d leftovers named, want 5: %v", len(named), named)
	}
	last := 0
	for _, l := range named {
		pid, _ := l["pid"].(float64)
		if want[int(pid)] == "" || l["command"] != want[int(pid)] {
			t.Errorf("named %v; the leftovers are %v", l, want)
		}
		if int(pid) <= last {
			t.Errorf("named %v after PID %d: not in the order of PIDs", l, last)
		}
		last = int(pid)
	}
	if more := testLog.find("more leftover processes"); len(more) != 1 || more[0]["count"] != float64(n-5) {
		t.Errorf("logged %v, want one line with count %d", more, n-5)
	}
	for pid := range want {
		if alive(pid) {
			t.Errorf("leftover %d survived the sweep", pid)
		}
	}
}
