package mainproc

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/reaper"
	"golang.org/x/sys/unix"
)

// sidecarSpec is a sidecar running script with sh, $D its directory; each
// run appends a line to $D/runs first.
func sidecarSpec(t *testing.T, script string) (SidecarSpec, string) {
	t.Helper()
	dir := t.TempDir()
	return SidecarSpec{
		Name:       "test",
		Spec:       reaper.Spec{Argv: []string{"sh", "-c", "D=" + dir + "\necho run >> $D/runs\n" + script}},
		StopSignal: unix.SIGTERM,
		Restart:    RestartOnFailure,
		Retries:    3,
		NewBackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) },
		MaxDelay:   time.Hour,
	}, dir
}

func runs(t *testing.T, dir string) int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, "runs"))
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

func result(t *testing.T, s *Sidecar) SidecarResult {
	t.Helper()
	select {
	case <-s.Ended():
		return s.Result()
	case <-time.After(20 * time.Second):
		t.Fatal("sidecar did not end within 20s")
	}
	panic("unreachable")
}

// TestSidecarGivesUp: a sidecar that keeps failing is restarted Retries
// times, then gives up with its last code.
func TestSidecarGivesUp(t *testing.T) {
	spec, dir := sidecarSpec(t, `exit 7`)
	res := result(t, StartSidecar(shared, spec, quiet))
	if !res.GaveUp || res.Exit.Code() != 7 || res.Restarts != 3 || res.Stopped {
		t.Errorf("result %+v, want gave up with 7 after 3 restarts", res)
	}
	if n := runs(t, dir); n != 4 {
		t.Errorf("%d runs, want 4", n)
	}
}

// TestSidecarPolicies: restart=no ends at the first exit, whatever its
// code; on-failure ends at an exit 0; always restarts after an exit 0 too.
func TestSidecarPolicies(t *testing.T) {
	for _, tc := range []struct {
		restart  Restart
		script   string
		wantRuns int
		gaveUp   bool
		code     int
	}{
		{RestartNo, "exit 5", 1, false, 5},
		{RestartNo, "exit 0", 1, false, 0},
		{RestartOnFailure, "exit 0", 1, false, 0},
		{RestartAlways, "exit 0", 4, true, 0},
	} {
		t.Run(string(tc.restart)+"/"+tc.script, func(t *testing.T) {
			spec, dir := sidecarSpec(t, tc.script)
			spec.Restart = tc.restart
			res := result(t, StartSidecar(shared, spec, quiet))
			if res.GaveUp != tc.gaveUp || res.Exit.Code() != tc.code {
				t.Errorf("result %+v, want gave up %v, code %d", res, tc.gaveUp, tc.code)
			}
			if n := runs(t, dir); n != tc.wantRuns {
				t.Errorf("%d runs, want %d", n, tc.wantRuns)
			}
		})
	}
}

// TestSidecarStableRunResets: a run longer than MaxDelay resets the count
// of restarts in a row, so a sidecar that crashes now and then never gives up.
func TestSidecarStableRunResets(t *testing.T) {
	// Every run lasts longer than MaxDelay; the fifth one exits 0.
	spec, dir := sidecarSpec(t, `[ $(wc -l < $D/runs) -ge 5 ] && exit 0; sleep 0.05; exit 1`)
	spec.Retries, spec.MaxDelay = 1, 10*time.Millisecond
	res := result(t, StartSidecar(shared, spec, quiet))
	if res.GaveUp || res.Exit.Code() != 0 {
		t.Errorf("result %+v, want an end with 0 (never gave up)", res)
	}
	if n := runs(t, dir); n != 5 {
		t.Errorf("%d runs, want 5", n)
	}
}

// TestSidecarStop: Stop sends the stop signal to a running sidecar (its
// handler runs); it ends as stopped, not failed, and is not restarted.
func TestSidecarStop(t *testing.T) {
	spec, dir := sidecarSpec(t, `trap 'echo term > $D/term; exit 9' TERM; touch $D/up; while :; do sleep 0.02; done`)
	s := StartSidecar(shared, spec, quiet)
	waitExists(t, filepath.Join(dir, "up"))
	s.Stop(time.Now().Add(10 * time.Second))
	res := result(t, s)
	if !res.Stopped || res.GaveUp || res.Exit.Code() != 9 {
		t.Errorf("result %+v, want stopped with its handler's 9", res)
	}
	if got := waitFile(t, filepath.Join(dir, "term")); got != "term" {
		t.Errorf("term marker %q", got)
	}
	if n := runs(t, dir); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

// TestSidecarStopDuringDelay: a stop while the sidecar waits to restart
// ends it at once.
func TestSidecarStopDuringDelay(t *testing.T) {
	spec, dir := sidecarSpec(t, `exit 1`)
	spec.NewBackOff = func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }
	var mu sync.Mutex
	restarting := make(chan struct{})
	spec.OnState = func(st State) {
		mu.Lock()
		defer mu.Unlock()
		if st == Restarting {
			close(restarting)
		}
	}
	s := StartSidecar(shared, spec, quiet)
	<-restarting
	start := time.Now()
	s.Stop(start.Add(time.Hour))
	if res := result(t, s); !res.Stopped || res.GaveUp {
		t.Errorf("result %+v, want stopped", res)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop during the delay took %s", d)
	}
	if n := runs(t, dir); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

// TestSidecarStopKills: a sidecar that ignores its stop signal is killed
// with its group at the deadline.
func TestSidecarStopKills(t *testing.T) {
	spec, dir := sidecarSpec(t, `trap '' TERM; touch $D/up; while :; do sleep 0.02; done`)
	s := StartSidecar(shared, spec, quiet)
	waitExists(t, filepath.Join(dir, "up"))
	s.Stop(time.Now().Add(200 * time.Millisecond))
	if res := result(t, s); !res.Stopped || res.Exit.Code() != 137 {
		t.Errorf("result %+v, want stopped by SIGKILL (137)", res)
	}
}

// TestSidecarLeftoverGoneBeforeRestart: what a run left in its process
// group is dead before the next run starts.
func TestSidecarLeftoverGoneBeforeRestart(t *testing.T) {
	spec, dir := sidecarSpec(t, `if [ $(wc -l < $D/runs) -eq 1 ]; then sleep 1000 & echo $! > $D/left.tmp; mv $D/left.tmp $D/left; exit 1; fi
pid=$(cat $D/left)
if [ -e /proc/$pid ] && [ "$(cut -d' ' -f3 /proc/$pid/stat)" != Z ] && ! grep -q '^ShdPnd:.*[1-9a-f]' /proc/$pid/status; then echo alive > $D/second; else echo gone > $D/second; fi
exit 0`)
	s := StartSidecar(shared, spec, quiet)
	result(t, s)
	if got := waitFile(t, filepath.Join(dir, "second")); got != "gone" {
		t.Errorf("the first run's leftover was %s when the second run started", got)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "left"))
	if pid, _ := strconv.Atoi(string(b[:len(b)-1])); pid > 0 {
		unix.Kill(pid, unix.SIGKILL)
	}
}

// fileCheck is a ReadyCheck for tests: run N is ready once $D/ready.N
// exists. It records, for each run, the PID Wait was given and whether
// Close was called, and adds MARK=N to the run's environment.
type fileCheck struct {
	dir string
	run int
	mu  *sync.Mutex
	log *[]string // "start N PID", "close N"
}

func (c *fileCheck) Env() []string { return []string{"MARK=" + strconv.Itoa(c.run)} }

func (c *fileCheck) Wait(ctx context.Context, pid int) error {
	c.record("start " + strconv.Itoa(c.run) + " " + strconv.Itoa(pid))
	path := filepath.Join(c.dir, "ready."+strconv.Itoa(c.run))
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (c *fileCheck) Close() { c.record("close " + strconv.Itoa(c.run)) }

func (c *fileCheck) record(s string) {
	c.mu.Lock()
	*c.log = append(*c.log, s)
	c.mu.Unlock()
}

// fileChecks is a SidecarSpec.Ready making one fileCheck per run.
func fileChecks(dir string) (ready func() (ReadyCheck, error), log func() []string) {
	var mu sync.Mutex
	var events []string
	run := 0
	return func() (ReadyCheck, error) {
			run++
			return &fileCheck{dir: dir, run: run, mu: &mu, log: &events}, nil
		}, func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), events...)
		}
}

// TestSidecarReady: with probes, the sidecar is ready only once they pass,
// and again after each restart; FirstReady is closed then.
func TestSidecarReady(t *testing.T) {
	spec, dir := sidecarSpec(t, `touch $D/ready.$(wc -l < $D/runs); [ $(wc -l < $D/runs) -ge 2 ] && exec sleep 1000; exit 1`)
	spec.Ready, _ = fileChecks(dir)
	var mu sync.Mutex
	var states []State
	spec.OnState = func(st State) { mu.Lock(); states = append(states, st); mu.Unlock() }
	s := StartSidecar(shared, spec, quiet)
	waitFirstReady(t, s)
	deadline := time.Now().Add(20 * time.Second)
	for s.State() != Ready || runs(t, dir) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("state %s after %d runs", s.State(), runs(t, dir))
		}
		time.Sleep(time.Millisecond)
	}
	s.Stop(time.Now().Add(10 * time.Second))
	result(t, s)
	mu.Lock()
	defer mu.Unlock()
	// The first run may or may not be seen ready before it exits.
	if states[0] != Starting || states[len(states)-1] != Ended || !contains(states, Restarting) || !contains(states, Ready) {
		t.Errorf("states %v, want starting, …, restarting, ready, ended", states)
	}
}

// TestSidecarReadyCheckPerRun: each run gets a check of its own, made
// before it starts: its Env reaches that run only, its Wait is given that
// run's PID, and it is closed once that run has exited, before the next
// run starts. A run is not ready until its own check passes: the first
// run's readiness does not carry over.
func TestSidecarReadyCheckPerRun(t *testing.T) {
	// Run 1 is made ready, then exits once told; run 2 waits for ever.
	spec, dir := sidecarSpec(t, `echo "$MARK $$" >> $D/marks
[ "$MARK" = 1 ] || exec sleep 1000
touch $D/ready.1
while [ ! -e $D/exit ]; do sleep 0.01; done
exit 1`)
	var events func() []string
	spec.Ready, events = fileChecks(dir)
	var mu sync.Mutex
	var states []State
	spec.OnState = func(st State) { mu.Lock(); states = append(states, st); mu.Unlock() }
	state := func() State { mu.Lock(); defer mu.Unlock(); return states[len(states)-1] }
	s := StartSidecar(shared, spec, quiet)
	waitFirstReady(t, s)
	if err := os.WriteFile(filepath.Join(dir, "exit"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Each run writes "MARK PID": the MARK its own check added, its $$.
	var marks []string
	deadline := time.Now().Add(20 * time.Second)
	for len(events()) < 3 || len(marks) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("events %q, marks %q: want run 2 started", events(), marks)
		}
		time.Sleep(time.Millisecond)
		b, _ := os.ReadFile(filepath.Join(dir, "marks"))
		marks = strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
	}
	if st := state(); st != Restarting {
		t.Errorf("state %s while run 2 is not ready, want %s", st, Restarting)
	}
	s.Stop(time.Now().Add(10 * time.Second))
	result(t, s)
	if len(marks) != 2 || !strings.HasPrefix(marks[0], "1 ") || !strings.HasPrefix(marks[1], "2 ") {
		t.Fatalf("the runs wrote %q, want MARK 1 then MARK 2", marks)
	}
	want := []string{"start " + marks[0], "close 1", "start " + marks[1], "close 2"}
	if got := events(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

// waitFirstReady waits until FirstReady is closed, failing the test when
// the sidecar ends first or 20s pass.
func waitFirstReady(t *testing.T, s *Sidecar) {
	t.Helper()
	select {
	case <-s.FirstReady():
	case <-s.Ended():
		t.Fatalf("ended before ready: %+v", s.Result())
	case <-time.After(20 * time.Second):
		t.Fatal("the sidecar never got ready")
	}
}

func contains(list []State, s State) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
