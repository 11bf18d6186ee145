package readiness

import (
	"os"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/reaper/reapertest"
)

// TestRefusals: the first refusal is logged in full, the next ones of the
// interval only counted, in one line at its end; an interval without any
// ends the count, so the next refusal is logged in full again; stop logs
// the count not logged yet, and nothing comes after it.
func TestRefusals(t *testing.T) {
	log, logs := reapertest.NewLog()
	r := newRefusals(log)
	r.interval = 50 * time.Millisecond
	const n = 1000
	for i := range n {
		r.add(100+i, 7, "refused", "i", i)
	}
	full := func() int { return len(logs.Find(t, "refused")) }
	counted := func() (lines, sum int) {
		for _, rec := range logs.Find(t, "notify messages refused") {
			lines++
			sum += int(rec["count"].(float64))
		}
		return lines, sum
	}
	reapertest.WaitFor(t, "the count", func() bool { _, sum := counted(); return sum == n-1 })
	if full() != 1 {
		t.Fatalf("%d refusals logged in full, want 1: %v", full(), logs.Records(t))
	}
	// Adds are microseconds apart: their count fits in one interval or two.
	if lines, _ := counted(); lines > 2 {
		t.Errorf("%d count lines for one burst: %v", lines, logs.Records(t))
	}
	if rec := logs.Find(t, "notify messages refused")[0]; rec["last_pid"] == nil || rec["last_uid"] != float64(7) {
		t.Errorf("count record %v, want the last sender", rec)
	}
	// The condition waited for is time itself: an interval without any.
	reapertest.WaitFor(t, "the count to end", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.timer == nil
	})
	r.add(1, 7, "refused")
	r.add(2, 7, "refused")
	if full() != 2 {
		t.Errorf("%d refusals logged in full after a quiet interval, want 2", full())
	}
	r.stop()
	if _, sum := counted(); sum != n {
		t.Errorf("counted %d after stop, want %d", sum, n)
	}
	before := len(logs.Records(t))
	time.Sleep(3 * r.interval) // what is waited for is that nothing happens
	r.add(3, 7, "refused")
	if got := len(logs.Records(t)); got != before {
		t.Errorf("%d records after stop, want none", got-before)
	}
}

// TestTreeRemembersOutsiders: a sender outside the tree costs one read of
// /proc from its second message on; the tree's own processes are walked
// each time, and found.
func TestTreeRemembersOutsiders(t *testing.T) {
	reads := 0
	counted := func(root int) *tree {
		t := newTree(root)
		t.stat = func(pid int) (int, uint64, bool) { reads++; return readStat(pid) }
		return t
	}

	outside := counted(1 << 30) // no such process: the test is outside it
	if outside.contains(os.Getpid()) {
		t.Fatal("the test is in the tree of a process that does not exist")
	}
	walk := reads
	if walk < 2 {
		t.Fatalf("%d reads for the first message: want a walk up to PID 1", walk)
	}
	for range 100 {
		outside.contains(os.Getpid())
	}
	if got := reads - walk; got != 100 {
		t.Errorf("%d reads for 100 more messages, want 100: one each", got)
	}

	inside := counted(os.Getppid())
	reads = 0
	for range 3 {
		if !inside.contains(os.Getpid()) {
			t.Fatal("the test is not in its parent's tree")
		}
	}
	if !inside.contains(os.Getppid()) || inside.contains(0) || inside.contains(1) {
		t.Error("the root is in its tree; PID 0 (another namespace) and 1 are not")
	}
	if reads != 3 {
		t.Errorf("%d reads, want 3: a child of the root is one read", reads)
	}
}
