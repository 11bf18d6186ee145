package mainproc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/main/registry"
	"golang.org/x/sys/unix"
)

// opsScript: each run writes its PID to $D/pid and stays up, exiting 9 on
// SIGTERM.
const opsScript = `trap 'exit 9' TERM; echo $$ > $D/pid.tmp; mv $D/pid.tmp $D/pid; while :; do sleep 0.01; done`

// pidReady is ready once the run wrote its PID to $D/pid.
type pidReady struct{ dir string }

func (pidReady) Env() []string { return nil }
func (c pidReady) Wait(ctx context.Context, pid int) error {
	for {
		if b, _ := os.ReadFile(filepath.Join(c.dir, "pid")); strings.TrimSpace(string(b)) == strconv.Itoa(pid) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
func (pidReady) Close() {}

// opsSpec is sidecarSpec, ready once a run wrote its PID to $D/pid.
func opsSpec(t *testing.T, script string) (SidecarSpec, string) {
	spec, dir := sidecarSpec(t, script)
	spec.Ready = func() (ReadyCheck, error) { return pidReady{dir}, nil }
	return spec, dir
}

func opsSidecar(t *testing.T, script string) (*Sidecar, string, *registry.Child, func() []SidecarResult) {
	t.Helper()
	spec, dir := opsSpec(t, script)
	spec.Grace = 5 * time.Second
	spec.Child = registry.New().Add("test", registry.Sidecar)
	var mu sync.Mutex
	var ends []SidecarResult
	spec.OnEnd = func(r SidecarResult) { mu.Lock(); ends = append(ends, r); mu.Unlock() }
	s := StartSidecar(shared, spec, quiet)
	t.Cleanup(func() {
		s.Stop(time.Now().Add(5 * time.Second))
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
			t.Error("sidecar not gone after its final Stop")
		}
	})
	return s, dir, spec.Child, func() []SidecarResult { mu.Lock(); defer mu.Unlock(); return append([]SidecarResult(nil), ends...) }
}

func pidOf(t *testing.T, dir string) string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, "pid"))
	return strings.TrimSpace(string(b))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestSidecarOperatorRestart: a restart stops the running run with its stop
// signal and starts a new one at once, with the restarts in a row reset;
// it returns once the new run is ready, and is no end of the sidecar.
func TestSidecarOperatorRestart(t *testing.T) {
	// The first run crashes, so the count of restarts is 1 before.
	s, dir, child, ends := opsSidecar(t, `[ $(wc -l < $D/runs) -eq 1 ] && exit 3; `+opsScript)
	waitFor(t, "run 2 up", func() bool { return runs(t, dir) == 2 && pidOf(t, dir) != "" && s.State() == Ready })
	if got := child.Info().Restarts; got != 1 {
		t.Fatalf("restarts %d before, want 1", got)
	}
	old := pidOf(t, dir)
	if err := s.Restart(ctx10s(t), "test"); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	waitFor(t, "a new PID", func() bool { p := pidOf(t, dir); return p != "" && p != old })
	i := child.Info()
	if i.Restarts != 0 || i.State != registry.Running || i.LastExit == nil || i.LastExit.Code != 9 {
		t.Errorf("entry %+v, want running, 0 restarts, last exit 9", i)
	}
	if n := runs(t, dir); n != 3 {
		t.Errorf("%d runs, want 3", n)
	}
	if e := ends(); len(e) != 0 {
		t.Errorf("ends %+v, want none", e)
	}
}

// TestSidecarOperatorRestartKills: a run that ignores its stop signal is
// killed after Grace, then started again.
func TestSidecarOperatorRestartKills(t *testing.T) {
	spec, dir := opsSpec(t, `trap '' TERM; echo $$ > $D/pid; while :; do sleep 0.01; done`)
	spec.Grace = 100 * time.Millisecond
	s := StartSidecar(shared, spec, quiet)
	defer s.Stop(time.Now().Add(time.Second))
	waitFirstReady(t, s)
	start := time.Now()
	if err := s.Restart(ctx10s(t), "test"); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("restarted after %s, before the grace", d)
	}
	waitFor(t, "run 2", func() bool { return runs(t, dir) == 2 })
}

// TestSidecarOperatorRestartDuringBackoff: a restart while the sidecar
// waits for its delay starts it now.
func TestSidecarOperatorRestartDuringBackoff(t *testing.T) {
	spec, dir := opsSpec(t, `[ $(wc -l < $D/runs) -eq 1 ] && exit 1; `+opsScript)
	spec.NewBackOff = func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }
	child := registry.New().Add("test", registry.Sidecar)
	spec.Child = child
	s := StartSidecar(shared, spec, quiet)
	defer s.Stop(time.Now().Add(5 * time.Second))
	waitFor(t, "backoff", func() bool { return child.Info().State == registry.Backoff })
	if err := s.Restart(ctx10s(t), "test"); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if n := runs(t, dir); n != 2 {
		t.Errorf("%d runs, want 2", n)
	}
	if i := child.Info(); i.Restarts != 0 || i.State != registry.Running {
		t.Errorf("entry %+v, want running with 0 restarts", i)
	}
}

// TestSidecarOperatorDownStart: an operator's stop keeps the sidecar down
// (no restart, ended as stopped by an operator, not by itself); start
// brings it back; stop while down, start while running are no-ops.
func TestSidecarOperatorDownStart(t *testing.T) {
	s, dir, child, ends := opsSidecar(t, opsScript)
	waitFirstReady(t, s)
	if err := s.Down(ctx10s(t), "test"); err != nil {
		t.Fatalf("Down: %v", err)
	}
	res := s.Result()
	if !res.Stopped || !res.ByOperator || res.GaveUp || res.Exit.Code() != 9 {
		t.Errorf("result %+v, want stopped by an operator with 9", res)
	}
	if i := child.Info(); i.State != registry.Stopped || i.PID != 0 {
		t.Errorf("entry %+v, want stopped", i)
	}
	if e := ends(); len(e) != 1 || !e[0].ByOperator {
		t.Errorf("OnEnd got %+v, want one stop by an operator", e)
	}
	if err := s.Down(ctx10s(t), "test"); err != nil {
		t.Errorf("Down of a stopped sidecar: %v", err)
	}
	if err := s.Signal(unix.SIGHUP); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Signal while down: %v, want ErrNotRunning", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := runs(t, dir); n != 1 {
		t.Fatalf("%d runs while down, want 1", n)
	}
	if err := s.Start(ctx10s(t), "test"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if i := child.Info(); i.State != registry.Running || s.State() != Ready {
		t.Errorf("entry %+v, state %s after Start", i, s.State())
	}
	select {
	case <-s.Ended():
		t.Error("Ended closed for the new life")
	default:
	}
	if err := s.Start(ctx10s(t), "test"); err != nil {
		t.Errorf("Start of a running sidecar: %v", err)
	}
	if n := runs(t, dir); n != 2 {
		t.Errorf("%d runs, want 2", n)
	}
}

// TestSidecarOperatorStartGaveUp: a sidecar that gave up is brought back
// by start, its restarts reset; then it gives up again by itself, and
// OnEnd says so each time.
func TestSidecarOperatorStartGaveUp(t *testing.T) {
	s, dir, child, ends := opsSidecar(t, `[ -e $D/ok ] && { `+opsScript+`; }; exit 7`)
	res := result(t, s)
	if !res.GaveUp {
		t.Fatalf("result %+v, want gave up", res)
	}
	if i := child.Info(); i.State != registry.GaveUp || i.Restarts != 3 {
		t.Errorf("entry %+v, want gave-up after 3", i)
	}
	os.WriteFile(filepath.Join(dir, "ok"), nil, 0o644)
	if err := s.Restart(ctx10s(t), "test"); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if i := child.Info(); i.State != registry.Running || i.Restarts != 0 {
		t.Errorf("entry %+v, want running, 0 restarts", i)
	}
	os.Remove(filepath.Join(dir, "ok"))
	if err := s.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second give-up", func() bool { return len(ends()) == 2 })
	if e := ends(); !e[0].GaveUp || !e[1].GaveUp || e[1].Restarts != 3 {
		t.Errorf("ends %+v, want two give-ups", e)
	}
}

// TestSidecarOperatorRestartsJoin: two restarts at once are one: one new
// run, both answered once it is ready.
func TestSidecarOperatorRestartsJoin(t *testing.T) {
	// The stop takes 300ms: the second restart comes while it is under way.
	s, dir, _, _ := opsSidecar(t, `trap 'sleep 0.3; exit 9' TERM; echo $$ > $D/pid; while :; do sleep 0.01; done`)
	waitFirstReady(t, s)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Restart(ctx10s(t), "test") }()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("restarts: %v", errs)
	}
	time.Sleep(50 * time.Millisecond)
	if n := runs(t, dir); n != 2 {
		t.Errorf("%d runs, want 2: the two restarts are one", n)
	}
}

// TestSidecarOperatorRestartThenDown: a stop during a restart's stop makes
// it a stop: the restart is answered with an error, nothing starts.
func TestSidecarOperatorRestartThenDown(t *testing.T) {
	s, dir, _, _ := opsSidecar(t, `trap 'sleep 0.3; exit 9' TERM; echo $$ > $D/pid; while :; do sleep 0.01; done`)
	waitFirstReady(t, s)
	restarted := make(chan error, 1)
	go func() { restarted <- s.Restart(ctx10s(t), "first") }()
	time.Sleep(100 * time.Millisecond) // the restart is under way: its stop takes 300ms
	if err := s.Down(ctx10s(t), "second"); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if err := <-restarted; err == nil {
		t.Error("the restart succeeded, want an error: a stop came")
	}
	if res := s.Result(); !res.ByOperator {
		t.Errorf("result %+v", res)
	}
	if n := runs(t, dir); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

// TestSidecarOperatorAfterFinalStop: once the final Stop began, commands
// are refused, and the sidecar's goroutine is gone.
func TestSidecarOperatorAfterFinalStop(t *testing.T) {
	s, _, _, ends := opsSidecar(t, `exit 7`)
	result(t, s) // gave up: down, waiting for commands
	s.Stop(time.Now().Add(time.Second))
	<-s.Done()
	for _, f := range []func(context.Context, string) error{s.Restart, s.Start, s.Down} {
		if err := f(ctx10s(t), "test"); !errors.Is(err, ErrFinalStop) {
			t.Errorf("after Stop: %v, want ErrFinalStop", err)
		}
	}
	if e := ends(); len(e) != 1 {
		t.Errorf("ends %+v, want the give-up only", e)
	}
}

// TestSidecarOperatorRestartDuringFinalStop: commands that race with the
// final Stop get an answer, never hang.
func TestSidecarOperatorRestartDuringFinalStop(t *testing.T) {
	for range 20 {
		spec, _ := opsSpec(t, opsScript)
		spec.Grace = time.Second
		s := StartSidecar(shared, spec, quiet)
		waitFirstReady(t, s)
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() { defer wg.Done(); s.Restart(ctx10s(t), "racer") }()
		}
		s.Stop(time.Now().Add(5 * time.Second))
		wg.Wait()
		<-s.Done()
	}
}
