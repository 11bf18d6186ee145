package readiness_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper/reapertest"
)

// Backoffs that fake time: no real delay, or a token one so that a probe
// failing in a loop does not spin a CPU the other tests need.
func zeroBackOff() backoff.BackOff { return &backoff.ZeroBackOff{} }
func tickBackOff() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }
func oneAttempt() backoff.BackOff  { return backoff.WithMaxRetries(&backoff.ZeroBackOff{}, 0) }

// startWait runs readiness.Wait in a goroutine and returns its result channel.
func startWait(ctx context.Context, probes []readiness.Probe, cfg readiness.Config) <-chan error {
	done := make(chan error, 1)
	go func() { done <- readiness.Wait(ctx, probes, cfg) }()
	return done
}

// result waits for Wait's result, failing the test after 20s.
func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not return within 20s")
		return nil
	}
}

// stillWaiting fails the test when Wait has already returned.
func stillWaiting(t *testing.T, done <-chan error, why string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v, but %s", err, why)
	default:
	}
}

func attemptOf(t *testing.T, rec map[string]any) int {
	t.Helper()
	n, ok := rec["attempt"].(float64)
	if !ok {
		t.Fatalf("record %v has no numeric attempt", rec)
	}
	return int(n)
}

func TestWaitNoProbes(t *testing.T) {
	for _, tt := range []struct {
		name   string
		probes []readiness.Probe
	}{
		{"nil", nil},
		{"empty", []readiness.Probe{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A zero Config has no logger and no runner: returning nil without
			// touching either shows nothing was started.
			if err := readiness.Wait(context.Background(), tt.probes, readiness.Config{}); err != nil {
				t.Errorf("Wait = %v, want nil", err)
			}
		})
	}
}

// Wait returns only once every probe has passed; a probe that passed is not
// polled again, so it stays passed even when its condition goes away.
func TestWaitAllMustPass(t *testing.T) {
	type setup struct {
		early, late           string // specs
		unmakeEarly, makeLate func()
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) setup
	}{
		{"tcp listener opens after failed attempts", func(t *testing.T) setup {
			early := filepath.Join(t.TempDir(), "early")
			if err := os.WriteFile(early, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			addr := closedPort(t)
			return setup{
				early:       "file:" + early,
				late:        "tcp:" + addr,
				unmakeEarly: func() { os.Remove(early) },
				makeLate:    func() { listen(t, addr) },
			}
		}},
		{"file appears after failed attempts", func(t *testing.T) setup {
			l := listen(t, "127.0.0.1:0")
			late := filepath.Join(t.TempDir(), "late")
			return setup{
				early:       "tcp:" + l.Addr().String(),
				late:        "file:" + late,
				unmakeEarly: func() { l.Close() },
				makeLate: func() {
					if err := os.WriteFile(late, nil, 0o644); err != nil {
						t.Error(err)
					}
				},
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.setup(t)
			log, logs := reapertest.NewLog()
			done := startWait(context.Background(),
				[]readiness.Probe{mustParse(t, s.early), mustParse(t, s.late)},
				readiness.Config{Timeout: time.Minute, AttemptTimeout: 10 * time.Second, Runner: runner, Log: log, NewBackOff: tickBackOff})

			reapertest.WaitFor(t, s.early+" to pass and "+s.late+" to fail twice", func() bool {
				return len(logs.Find(t, "probe passed", "probe", s.early)) == 1 && len(logs.Find(t, "probe failed", "probe", s.late)) >= 2
			})
			stillWaiting(t, done, s.late+" has not passed")
			s.unmakeEarly()
			s.makeLate()
			if err := result(t, done); err != nil {
				t.Fatalf("Wait = %v, want nil", err)
			}

			passed := logs.Find(t, "probe passed", "probe", s.early)
			if len(passed) != 1 || attemptOf(t, passed[0]) != 1 {
				t.Errorf("%s passed %v, want once at attempt 1", s.early, passed)
			}
			if failed := logs.Find(t, "probe failed", "probe", s.early); len(failed) != 0 {
				t.Errorf("%s was polled again after it passed: %v", s.early, failed)
			}
			passed = logs.Find(t, "probe passed", "probe", s.late)
			if len(passed) != 1 || attemptOf(t, passed[0]) < 3 {
				t.Errorf("%s passed %v, want once, after at least two failed attempts", s.late, passed)
			}
			if ready := logs.Find(t, "ready"); len(ready) != 1 {
				t.Errorf("logged %d \"ready\" records, want 1", len(ready))
			}
		})
	}
}

// On timeout, Wait names each probe still failing with its last real error,
// not with the cancellation that ended the wait.
func TestWaitTimeout(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "present")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	closed := closedPort(t)
	failing := []struct{ spec, wantErr string }{
		{"tcp:" + closed, "connection refused"},
		{"file:" + filepath.Join(dir, "absent"), "no such file or directory"},
		{`exec:sh -c 'echo "starting up" >&2; echo "not yet ready" >&2; exit 1'`, "exit status 1: not yet ready"},
	}
	probes := []readiness.Probe{mustParse(t, failing[0].spec), mustParse(t, "file:"+present)}
	for _, f := range failing[1:] {
		probes = append(probes, mustParse(t, f.spec))
	}
	log, logs := reapertest.NewLog()
	const timeout = time.Second
	start := time.Now()
	err := result(t, startWait(context.Background(), probes,
		readiness.Config{Timeout: timeout, AttemptTimeout: 10 * time.Second, Runner: runner, Log: log,
			NewBackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(10 * time.Millisecond) }}))
	elapsed := time.Since(start)

	var nr *readiness.NotReadyError
	if !errors.As(err, &nr) {
		t.Fatalf("Wait = %v (%T), want *readiness.NotReadyError", err, err)
	}
	if elapsed < timeout {
		t.Errorf("Wait returned after %s, before the %s timeout", elapsed, timeout)
	}
	if nr.After != timeout {
		t.Errorf("After = %s, want %s", nr.After, timeout)
	}
	if len(nr.Failing) != len(failing) {
		t.Fatalf("Failing = %v, want the %d failing probes", nr.Failing, len(failing))
	}
	for i, f := range failing {
		t.Run(f.spec, func(t *testing.T) {
			got := nr.Failing[i]
			if got.Probe.String() != f.spec {
				t.Errorf("Failing[%d] is %s, want %s (in the order given)", i, got.Probe, f.spec)
			}
			assertRealError(t, got.Err, f.wantErr)
		})
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "not ready after 1s: ") {
		t.Errorf("error %q does not start with %q", msg, "not ready after 1s: ")
	}
	for _, f := range failing {
		if !strings.Contains(msg, f.spec+": ") {
			t.Errorf("error %q does not name %s", msg, f.spec)
		}
	}
	if strings.Contains(msg, "file:"+present) {
		t.Errorf("error %q names the probe that passed", msg)
	}
	if len(logs.Find(t, "ready")) != 0 {
		t.Error(`logged "ready" although Wait timed out`)
	}
}

// A probe whose only attempt is still running when the wait times out has
// no real error to report; it must still not be reported as the
// cancellation ("context deadline exceeded") that cut the attempt short.
func TestWaitTimeoutDuringFirstAttempt(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	spec := `exec:sh -c 'sleep 100 & echo $! > ` + pidFile + `; wait'`
	log, _ := reapertest.NewLog()
	done := startWait(context.Background(), []readiness.Probe{mustParse(t, spec)},
		readiness.Config{Timeout: 500 * time.Millisecond, AttemptTimeout: time.Minute, Runner: runner, Log: log, NewBackOff: zeroBackOff})
	pid := reapertest.ReadPID(t, pidFile)
	reapertest.KillOnCleanupIfRunning(t, pid)
	start, _ := reapertest.ProcStart(pid)
	err := result(t, done)
	var nr *readiness.NotReadyError
	if !errors.As(err, &nr) {
		t.Fatalf("Wait = %v (%T), want *readiness.NotReadyError", err, err)
	}
	if len(nr.Failing) != 1 || nr.Failing[0].Probe.String() != spec {
		t.Fatalf("Failing = %v, want just %s", nr.Failing, spec)
	}
	assertRealError(t, nr.Failing[0].Err, "")
	reapertest.WaitGone(t, pid, start)
}

// assertRealError fails when err is missing, is only the context's
// cancellation, or lacks want.
func assertRealError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error recorded for a failing probe")
	}
	cancellation := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	for _, s := range []string{"context canceled", "context deadline exceeded", "operation was canceled"} {
		cancellation = cancellation || strings.Contains(err.Error(), s)
	}
	if cancellation {
		t.Errorf("last error %q is the wait's own cancellation, not the probe's failure", err)
	}
	if want != "" && !strings.Contains(err.Error(), want) {
		t.Errorf("last error %q does not contain %q", err, want)
	}
}

var errShutdown = errors.New("test: shutting down")

// When ctx is done first, Wait returns context.Cause(ctx), and any running
// exec probe is killed with its process group.
func TestWaitContextDone(t *testing.T) {
	tests := []struct {
		name string
		// ctx returns the context to wait under and a func that ends it
		// (nil when it ends by itself).
		ctx     func() (context.Context, func())
		timeout time.Duration // the wait's own
		hang    bool          // the probe is an exec probe that hangs
	}{
		{
			name: "cancelled with a cause",
			ctx: func() (context.Context, func()) {
				ctx, cancel := context.WithCancelCause(context.Background())
				return ctx, func() { cancel(errShutdown) }
			},
		},
		{
			name: "cancelled before the readiness timeout",
			ctx: func() (context.Context, func()) {
				ctx, cancel := context.WithCancelCause(context.Background())
				return ctx, func() { cancel(errShutdown) }
			},
			timeout: time.Hour,
		},
		{
			name: "cancelled during a hanging exec probe",
			ctx: func() (context.Context, func()) {
				ctx, cancel := context.WithCancelCause(context.Background())
				return ctx, func() { cancel(errShutdown) }
			},
			hang: true,
		},
		{
			name: "parent deadline with a cause",
			ctx: func() (context.Context, func()) {
				ctx, cancel := context.WithTimeoutCause(context.Background(), 300*time.Millisecond, errShutdown)
				t.Cleanup(cancel)
				return ctx, nil
			},
			timeout: time.Hour,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, end := tt.ctx()
			spec := "file:" + filepath.Join(t.TempDir(), "absent")
			pidFile := filepath.Join(t.TempDir(), "pid")
			if tt.hang {
				spec = `exec:sh -c 'sleep 100 & echo $! > ` + pidFile + `; wait'`
			}
			log, logs := reapertest.NewLog()
			done := startWait(ctx, []readiness.Probe{mustParse(t, spec)},
				readiness.Config{Timeout: tt.timeout, AttemptTimeout: time.Minute, Runner: runner, Log: log, NewBackOff: tickBackOff})
			pid, start := 0, ""
			if tt.hang {
				pid = reapertest.ReadPID(t, pidFile)
				reapertest.KillOnCleanupIfRunning(t, pid)
				start, _ = reapertest.ProcStart(pid)
			} else {
				reapertest.WaitFor(t, "a failed attempt", func() bool { return len(logs.Find(t, "probe failed", "probe", spec)) > 0 })
			}
			if end != nil {
				stillWaiting(t, done, "its context is not done yet")
				end()
			}
			err := result(t, done)
			if !errors.Is(err, errShutdown) {
				t.Errorf("Wait = %v (%T), want the context's cause %v", err, err, errShutdown)
			}
			if tt.hang {
				reapertest.WaitGone(t, pid, start)
			}
		})
	}
}

// A probe that can never pass fails the wait at once, naming the probe,
// even while other probes are still being retried and no timeout is set.
func TestWaitPermanentFailure(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec string
		is   error
	}{
		{"not found in PATH", "exec:mainstay-no-such-program", exec.ErrNotFound},
		{"absent path", "exec:" + filepath.Join(dir, "absent") + " arg", fs.ErrNotExist},
		{"not executable", "exec:" + notExec, fs.ErrPermission},
	}
	errTestDeadline := errors.New("test deadline: Wait kept retrying a probe that cannot pass")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeoutCause(context.Background(), 10*time.Second, errTestDeadline)
			defer cancel()
			other := "tcp:" + closedPort(t)
			log, logs := reapertest.NewLog()
			// No readiness timeout and the real exponential backoff: only
			// the permanent failure can end this wait before the test's deadline.
			err := result(t, startWait(ctx, []readiness.Probe{mustParse(t, other), mustParse(t, tt.spec)},
				readiness.Config{Interval: time.Millisecond, MaxInterval: 10 * time.Millisecond, AttemptTimeout: 10 * time.Second, Runner: runner, Log: log}))
			if err == nil || errors.Is(err, errTestDeadline) {
				t.Fatalf("Wait = %v, want the permanent failure of %s", err, tt.spec)
			}
			var nr *readiness.NotReadyError
			if errors.As(err, &nr) {
				t.Errorf("Wait = %v, want the probe's own error, not a timeout", err)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("Wait = %v, want an error that is %v", err, tt.is)
			}
			if want := fmt.Sprintf("probe %s: ", tt.spec); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Wait = %q, want it to start with %q", err, want)
			}
			if failed := logs.Find(t, "probe failed", "probe", tt.spec); len(failed) != 0 {
				t.Errorf("a probe that cannot pass was retried: %v", failed)
			}
		})
	}
}

// An exec probe that hangs is killed with its process group once the
// attempt timeout elapses, and it does not hold up the other probes.
func TestWaitHangingExecProbe(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	present := filepath.Join(dir, "present")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hang := `exec:sh -c 'sleep 100 & echo $! > ` + pidFile + `; wait'`
	other := "file:" + present
	const attemptTimeout = 2 * time.Second
	log, logs := reapertest.NewLog()
	begin := time.Now()
	// One attempt per probe: the hanging probe's timed-out attempt ends the wait.
	done := startWait(context.Background(), []readiness.Probe{mustParse(t, hang), mustParse(t, other)},
		readiness.Config{AttemptTimeout: attemptTimeout, Runner: runner, Log: log, NewBackOff: oneAttempt})

	pid := reapertest.ReadPID(t, pidFile)
	reapertest.KillOnCleanupIfRunning(t, pid)
	start, ok := reapertest.ProcStart(pid)
	reapertest.WaitFor(t, other+" to pass", func() bool { return len(logs.Find(t, "probe passed", "probe", other)) == 1 })
	if !ok || !reapertest.Alive(pid) {
		t.Fatalf("%s passed only once the hanging probe's attempt was over", other)
	}
	stillWaiting(t, done, "the hanging probe has not finished")

	err := result(t, done)
	if elapsed := time.Since(begin); elapsed < attemptTimeout {
		t.Errorf("Wait returned after %s, before the %s attempt timeout", elapsed, attemptTimeout)
	}
	if err == nil {
		t.Fatal("Wait = nil, want the hanging probe's timeout")
	}
	for _, want := range []string{"probe " + hang + ": ", "attempt timed out after 2s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Wait = %q, want it to contain %q", err, want)
		}
	}
	reapertest.WaitGone(t, pid, start)
}

// With MaxInterval 0 each probe gets its kind's cap: cheap connection
// probes are polled at most CheapMaxInterval apart, exec: probes grow to
// MaxInterval; an explicit MaxInterval applies to every kind.
func TestWaitDefaultMaxInterval(t *testing.T) {
	for _, tt := range []struct {
		spec     string
		want     time.Duration
		explicit time.Duration
	}{
		{"tcp:" + closedPort(t), readiness.CheapMaxInterval, 0},
		{"http://" + closedPort(t) + "/", readiness.CheapMaxInterval, 0},
		{"unix:" + filepath.Join(t.TempDir(), "absent.sock"), readiness.CheapMaxInterval, 0},
		{"exec:false", readiness.MaxInterval, 0},
		{"tcp:" + closedPort(t), 60 * time.Millisecond, 60 * time.Millisecond},
	} {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, tt.spec)
			if tt.explicit == 0 && readiness.DefaultMaxInterval(p) != tt.want {
				t.Fatalf("DefaultMaxInterval = %s, want %s", readiness.DefaultMaxInterval(p), tt.want)
			}
			log, logs := reapertest.NewLog()
			// 10, 20, 40, 80 ms and on: long enough to reach either cap,
			// even when exec attempts are slow on a busy machine.
			err := readiness.Wait(context.Background(), []readiness.Probe{p}, readiness.Config{
				Timeout: 1500 * time.Millisecond, Interval: 10 * time.Millisecond, MaxInterval: tt.explicit,
				AttemptTimeout: time.Second, Runner: runner, Log: log,
			})
			var nr *readiness.NotReadyError
			if !errors.As(err, &nr) {
				t.Fatalf("Wait = %v, want a NotReadyError", err)
			}
			var longest time.Duration
			for _, rec := range logs.Find(t, "probe failed") {
				longest = max(longest, time.Duration(rec["delay"].(float64)))
			}
			jitter := time.Duration(float64(tt.want) * readiness.RandomizationFactor)
			if longest > tt.want+jitter || longest < tt.want-jitter {
				t.Errorf("longest delay %s, want %s ±%s", longest, tt.want, jitter)
			}
		})
	}
}
