package helpers_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/helpers"
	"github.com/mainstay-dev/mainstay/main/registry"
	"github.com/mainstay-dev/mainstay/reaper"
	"github.com/mainstay-dev/mainstay/reaper/reapertest"
)

// sh is a task that runs script with sh -c; extra words become $0, $1, ...
func sh(script string, args ...string) helpers.Task {
	argv := append([]string{"sh", "-c", script}, args...)
	return helpers.Task{Name: "sh -c '" + script + "'", Argv: argv}
}

// appendTo is a task that appends line to file.
func appendTo(file, line string) helpers.Task {
	return sh(`echo "$1" >> "$0"`, file, line)
}

// hang is a task whose shell waits on a background sleep, whose PID it
// writes to pidFile first: killing only the shell would leave the sleep.
func hang(pidFile string) helpers.Task {
	return sh(`sleep 100 & echo $! > "$0"; wait`, pidFile)
}

func readFile(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runAsync runs helpers.Run in a goroutine.
func runAsync(ctx context.Context, tasks []helpers.Task, cfg helpers.Config) <-chan error {
	done := make(chan error, 1)
	go func() { done <- helpers.Run(ctx, tasks, cfg) }()
	return done
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s")
		return nil
	}
}

func TestRunInOrder(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	pid1 := filepath.Join(dir, "pid1")
	tests := []struct {
		name  string
		tasks []helpers.Task
		want  string
	}{
		{"no tasks", nil, ""},
		{"one after another", []helpers.Task{appendTo(out, "1"), appendTo(out, "2"), appendTo(out, "3")}, "1\n2\n3\n"},
		{
			// The second task starts only once the first has exited and
			// been reaped: its /proc entry is gone by then.
			"each runs to completion before the next",
			[]helpers.Task{
				sh(`echo $$ > "$0"; echo 1 >> "$1"`, pid1, out),
				sh(`if [ -e /proc/$(cat "$0") ]; then echo "2 overlapped 1" >> "$1"; else echo 2 >> "$1"; fi`, pid1, out),
			},
			"1\n2\n",
		},
		{
			"argv reaches the helper intact",
			[]helpers.Task{{Name: "printf", Argv: []string{"sh", "-c", `printf '%s|' "$@" >> "$0"`, out, "a b", `"c"`, "", "d,e"}}},
			`a b|"c"||d,e|`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(out)
			log, logs := reapertest.NewLog()
			err := result(t, runAsync(context.Background(), tt.tasks, helpers.Config{OnFailure: helpers.Stop, Runner: runner, Log: log}))
			if err != nil {
				t.Fatalf("Run = %v, want nil", err)
			}
			if got := readFile(t, out); got != tt.want {
				t.Errorf("output %q, want %q", got, tt.want)
			}
			started, succeeded := logs.Find(t, "helper started"), logs.Find(t, "helper succeeded")
			if len(started) != len(tt.tasks) || len(succeeded) != len(tt.tasks) {
				t.Fatalf("logged %d starts and %d successes, want %d of each", len(started), len(succeeded), len(tt.tasks))
			}
			for i, task := range tt.tasks {
				if started[i]["helper"] != task.Name || succeeded[i]["helper"] != task.Name {
					t.Errorf("log record %d names %v/%v, want %q", i, started[i]["helper"], succeeded[i]["helper"], task.Name)
				}
			}
		})
	}
}

// Under Stop, the first failed task ends the run with a *helpers.Error whose
// ExitCode is what mainstay exits with; later tasks do not run.
func TestRunStopsAtFirstFailure(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badFormat := filepath.Join(dir, "bad-format")
	if err := os.WriteFile(badFormat, []byte("\x00\x01\x02 not a program\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "pid")
	tests := []struct {
		name     string
		task     helpers.Task
		timeout  time.Duration
		wantCode int
		wantMsg  string        // the error message after `helper "NAME": `
		is       error         // errors.Is target, when set
		timedOut time.Duration // want Error.TimedOut
		hangs    bool          // task is hang(pidFile)
	}{
		{name: "exit 5", task: sh("exit 5"), wantCode: 5, wantMsg: `exit status 5`},
		{name: "exit 1", task: helpers.Task{Name: "false", Argv: []string{"false"}}, wantCode: 1, wantMsg: `exit status 1`},
		{name: "killed by SIGTERM", task: sh("kill -TERM $$"), wantCode: 143, wantMsg: `killed by SIGTERM`},
		{name: "killed by SIGKILL", task: sh("kill -KILL $$"), wantCode: 137, wantMsg: `killed by SIGKILL`},
		{
			name: "timeout", task: hang(pidFile), timeout: 300 * time.Millisecond, hangs: true,
			wantCode: 124, timedOut: 300 * time.Millisecond,
			wantMsg: `timed out after 300ms`,
		},
		{
			name: "not found", task: helpers.Task{Name: "mainstay-no-such-helper up", Argv: []string{"mainstay-no-such-helper", "up"}},
			wantCode: 127, is: exec.ErrNotFound,
			wantMsg: `exec: "mainstay-no-such-helper": executable file not found in $PATH`,
		},
		{
			name: "absent path", task: helpers.Task{Name: "absent", Argv: []string{filepath.Join(dir, "absent")}},
			wantCode: 127, is: fs.ErrNotExist,
			wantMsg: `fork/exec ` + filepath.Join(dir, "absent") + `: no such file or directory`,
		},
		{
			name: "not executable", task: helpers.Task{Name: "not-executable", Argv: []string{notExec}},
			wantCode: 126, is: fs.ErrPermission,
			wantMsg: `fork/exec ` + notExec + `: permission denied`,
		},
		{
			name: "directory", task: helpers.Task{Name: "dir", Argv: []string{dir}},
			wantCode: 126, wantMsg: `fork/exec ` + dir + `: permission denied`,
		},
		{
			name: "not an executable format", task: helpers.Task{Name: "bad-format", Argv: []string{badFormat}},
			wantCode: 126, wantMsg: `fork/exec ` + badFormat + `: exec format error`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			os.Remove(pidFile)
			log, _ := reapertest.NewLog()
			done := runAsync(context.Background(),
				[]helpers.Task{appendTo(out, "before"), tt.task, appendTo(out, "after")},
				helpers.Config{Timeout: tt.timeout, OnFailure: helpers.Stop, Runner: runner, Log: log})
			var pid int
			var start string
			if tt.hangs {
				pid = reapertest.ReadPID(t, pidFile)
				start = reapertest.KillOnCleanup(t, pid)
			}
			err := result(t, done)
			var he *helpers.Error
			if !errors.As(err, &he) {
				t.Fatalf("Run = %v (%T), want *helpers.Error", err, err)
			}
			if he.Task.Name != tt.task.Name {
				t.Errorf("Task = %q, want %q", he.Task.Name, tt.task.Name)
			}
			if got := code(he); got != tt.wantCode {
				t.Errorf("ExitCode() = %d, want %d", got, tt.wantCode)
			}
			if want := fmt.Sprintf("helper %q: %s", tt.task.Name, tt.wantMsg); err.Error() != want {
				t.Errorf("Error() = %q\nwant        %q", err, want)
			}
			if he.TimedOut != tt.timedOut {
				t.Errorf("TimedOut = %s, want %s", he.TimedOut, tt.timedOut)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Run = %v, want an error that is %v", err, tt.is)
			}
			if got := readFile(t, out); got != "before\n" {
				t.Errorf("output %q, want %q: the task after the failed one must not run", got, "before\n")
			}
			if tt.hangs {
				reapertest.WaitGone(t, pid, start)
			}
		})
	}
}

// Under Continue, a failed task is logged and the next one runs.
func TestRunContinuesPastFailures(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	pidFile := filepath.Join(dir, "pid")
	failing := []helpers.Task{
		sh("exit 5"),
		{Name: "mainstay-no-such-helper", Argv: []string{"mainstay-no-such-helper"}},
		hang(pidFile),
	}
	tasks := []helpers.Task{
		appendTo(out, "1"), failing[0], failing[1], appendTo(out, "2"), failing[2], appendTo(out, "3"),
	}
	log, logs := reapertest.NewLog()
	done := runAsync(context.Background(), tasks, helpers.Config{Timeout: 500 * time.Millisecond, OnFailure: helpers.Continue, Runner: runner, Log: log})
	pid := reapertest.ReadPID(t, pidFile)
	start := reapertest.KillOnCleanup(t, pid)
	if err := result(t, done); err != nil {
		t.Fatalf("Run = %v, want nil under Continue", err)
	}
	if got, want := readFile(t, out), "1\n2\n3\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	reapertest.WaitGone(t, pid, start)
	warns := logs.Find(t, "helper failed; continuing")
	if len(warns) != len(failing) {
		t.Fatalf("logged %d failures, want %d: %v", len(warns), len(failing), warns)
	}
	wantRemaining := []float64{4, 3, 1}
	for i, w := range warns {
		if w["helper"] != failing[i].Name || w["level"] != "WARN" || w["remaining"] != wantRemaining[i] || w["err"] == "" {
			t.Errorf("failure record %d = %v, want helper %q, level WARN, remaining %v and an err", i, w, failing[i].Name, wantRemaining[i])
		}
	}
}

var errShutdown = errors.New("test: main exited")

// When ctx is done, the running task is killed with its process group and
// Run returns context.Cause(ctx) without running the rest.
func TestRunContextDone(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func(t *testing.T) (context.Context, func()) // func ends ctx; nil when it ends by itself
		policy  helpers.Policy
		timeout time.Duration
		early   bool // ctx is done before Run starts
	}{
		{name: "cancelled during a task", ctx: cancelCause, policy: helpers.Stop},
		{name: "cancelled during a task under continue", ctx: cancelCause, policy: helpers.Continue},
		{name: "cancelled during a task with a longer timeout", ctx: cancelCause, policy: helpers.Stop, timeout: time.Hour},
		{
			name: "parent deadline during a task", policy: helpers.Stop, timeout: time.Hour,
			ctx: func(t *testing.T) (context.Context, func()) {
				ctx, cancel := context.WithTimeoutCause(context.Background(), 300*time.Millisecond, errShutdown)
				t.Cleanup(cancel)
				return ctx, nil
			},
		},
		{name: "cancelled before the first task", ctx: cancelCause, policy: helpers.Stop, early: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out, pidFile := filepath.Join(dir, "out"), filepath.Join(dir, "pid")
			ctx, end := tt.ctx(t)
			if tt.early {
				end()
			}
			log, _ := reapertest.NewLog()
			done := runAsync(ctx, []helpers.Task{appendTo(out, "before"), hang(pidFile), appendTo(out, "after")},
				helpers.Config{Timeout: tt.timeout, OnFailure: tt.policy, Runner: runner, Log: log})
			want := "before\n"
			var pid int
			var start string
			if tt.early {
				want = ""
			} else {
				pid = reapertest.ReadPID(t, pidFile)
				start = reapertest.KillOnCleanup(t, pid)
				if end != nil {
					select {
					case err := <-done:
						t.Fatalf("Run returned %v while its task was running", err)
					default:
					}
					end()
				}
			}
			err := result(t, done)
			if !errors.Is(err, errShutdown) {
				t.Errorf("Run = %v (%T), want the context's cause %v", err, err, errShutdown)
			}
			var he *helpers.Error
			if errors.As(err, &he) {
				t.Errorf("Run = %v, want the cause, not a helper failure", err)
			}
			if got := readFile(t, out); got != want {
				t.Errorf("output %q, want %q", got, want)
			}
			if !tt.early {
				reapertest.WaitGone(t, pid, start)
			} else if _, err := os.Stat(pidFile); err == nil {
				t.Error("a task ran although the context was done before Run")
			}
		})
	}
}

func cancelCause(*testing.T) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	return ctx, func() { cancel(errShutdown) }
}

// lateRunner runs the command for real, then returns only once ctx is done:
// as when a task exits an instant before its deadline and the timer fires
// before the exit is looked at.
type lateRunner struct{ reaper.Runner }

func (l lateRunner) Run(ctx context.Context, s reaper.Spec) (reaper.Exit, error) {
	exit, err := l.Runner.Run(ctx, s)
	<-ctx.Done()
	return exit, err
}

// TestExitJustBeforeTimeout: a task that exited with 0 before mainstay
// killed it succeeded, even though its deadline has passed by the time its
// result is read; one that exited 3 failed with 3, not 124.
func TestExitJustBeforeTimeout(t *testing.T) {
	for _, tc := range []struct {
		script string
		code   int // 0: success
	}{{"exit 0", 0}, {"exit 3", 3}} {
		t.Run(tc.script, func(t *testing.T) {
			log, _ := reapertest.NewLog()
			err := result(t, runAsync(context.Background(), []helpers.Task{sh(tc.script)},
				helpers.Config{Timeout: 50 * time.Millisecond, OnFailure: helpers.Stop, Runner: lateRunner{runner}, Log: log}))
			var he *helpers.Error
			switch {
			case tc.code == 0 && err != nil:
				t.Errorf("Run = %v, want success", err)
			case tc.code != 0 && (!errors.As(err, &he) || code(he) != tc.code || he.TimedOut != 0):
				t.Errorf("Run = %v, want exit code %d without a timeout", err, tc.code)
			}
		})
	}
}

// counting is a task that counts its runs in file and exits with the
// code that codes gives for its run (1-based), 0 past its end.
func counting(file string, codes ...int) helpers.Task {
	script := `n=$(($(cat "$0" 2>/dev/null || echo 0) + 1)); echo $n > "$0"; set -- $1; shift $((n - 1)) 2>/dev/null || exit 0; exit ${1:-0}`
	list := ""
	for _, c := range codes {
		list += fmt.Sprintf("%d ", c)
	}
	return sh(script, file, list)
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		codes    []int // exit code of each run
		retries  int
		wantRuns int
		wantCode int // 0: success
	}{
		{"succeeds on the third try", []int{3, 4}, 3, 3, 0},
		{"always fails: the last code counts", []int{3, 4, 5, 6}, 3, 4, 6},
		{"no retries", []int{3}, 0, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "runs")
			log, logs := reapertest.NewLog()
			err := result(t, runAsync(context.Background(), []helpers.Task{counting(file, tc.codes...)},
				helpers.Config{OnFailure: helpers.Stop, Runner: runner, Log: log, Retries: tc.retries}))
			if got := readFile(t, file); got != fmt.Sprintf("%d\n", tc.wantRuns) {
				t.Errorf("ran %q times, want %d", got, tc.wantRuns)
			}
			var he *helpers.Error
			switch {
			case tc.wantCode == 0 && err != nil:
				t.Errorf("Run = %v, want success", err)
			case tc.wantCode != 0 && (!errors.As(err, &he) || code(he) != tc.wantCode || he.Tries != tc.wantRuns):
				t.Errorf("Run = %v, want exit code %d after %d tries", err, tc.wantCode, tc.wantRuns)
			}
			retries := logs.Find(t, "helper failed; retrying")
			if len(retries) != min(tc.wantRuns-1, tc.retries) {
				t.Errorf("%d retry lines, want %d: %v", len(retries), tc.wantRuns-1, retries)
			}
			for i, rec := range retries {
				if rec["try"] != float64(i+1) || rec["exit_code"] != float64(tc.codes[i]) {
					t.Errorf("retry line %d: %v, want try %d, exit_code %d", i, rec, i+1, tc.codes[i])
				}
			}
		})
	}
}

// TestNoRetryWhenCannotStart: a program that does not exist fails at once
// with 127, whatever the retries.
func TestNoRetryWhenCannotStart(t *testing.T) {
	log, logs := reapertest.NewLog()
	err := result(t, runAsync(context.Background(), []helpers.Task{{Name: "nope", Argv: []string{"/nonexistent/prog"}}},
		helpers.Config{OnFailure: helpers.Stop, Runner: runner, Log: log, Retries: 5}))
	var he *helpers.Error
	if !errors.As(err, &he) || code(he) != 127 || he.Tries != 1 {
		t.Errorf("Run = %v, want 127 after one try", err)
	}
	if r := logs.Find(t, "helper failed; retrying"); len(r) != 0 {
		t.Errorf("retried a program that cannot start: %v", r)
	}
}

// TestStopDuringRetryDelay: a stop (ctx cancelled) during the delay before
// the next try ends Run at once with the stop's cause.
func TestStopDuringRetryDelay(t *testing.T) {
	file := filepath.Join(t.TempDir(), "runs")
	log, _ := reapertest.NewLog()
	ctx, cancel := context.WithCancelCause(context.Background())
	done := runAsync(ctx, []helpers.Task{counting(file, 1, 1, 1)}, helpers.Config{
		OnFailure: helpers.Stop, Runner: runner, Log: log, Retries: 2,
		NewBackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) },
	})
	reapertest.WaitFor(t, "the first try", func() bool { return readFile(t, file) == "1\n" })
	cancel(errShutdown)
	if err := result(t, done); !errors.Is(err, errShutdown) {
		t.Errorf("Run = %v, want the stop's cause", err)
	}
	if got := readFile(t, file); got != "1\n" {
		t.Errorf("ran %q times, want once", got)
	}
}

// code is the exit code the lifecycle gives for a failed task (see
// lifecycle.Outcome.Code): its own, 124 on timeout, 127/126 when it
// cannot start.
func code(e *helpers.Error) int {
	switch {
	case e.Err != nil:
		return reaper.StartFailureCode(e.Err)
	case e.TimedOut > 0:
		return 124
	}
	return e.Exit.Code()
}

// TestRunRegistry: each task's registry entry follows it: its last exit,
// and exited once done.
func TestRunRegistry(t *testing.T) {
	reg := registry.New()
	ok, bad := reg.Add("helper true", registry.Helper), reg.Add("helper sh", registry.Helper)
	log, _ := reapertest.NewLog()
	tasks := []helpers.Task{
		{Name: "true", Argv: []string{"true"}, Child: ok},
		{Name: "sh -c 'exit 4'", Argv: []string{"sh", "-c", "exit 4"}, Child: bad},
	}
	if err := helpers.Run(context.Background(), tasks, helpers.Config{OnFailure: helpers.Continue, Runner: runner, Log: log}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    *registry.Child
		code int
	}{{ok, 0}, {bad, 4}} {
		i := tc.c.Info()
		if i.State != registry.Exited || i.LastExit == nil || i.LastExit.Code != tc.code || i.Started.IsZero() {
			t.Errorf("%s: %+v, want exited with %d and a start time", i.Name, i, tc.code)
		}
	}
}
