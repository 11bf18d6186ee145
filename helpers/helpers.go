package helpers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/main/registry"
	"github.com/mainstay-dev/mainstay/reaper"
)

// Task is one helper command.
type Task struct {
	// Name is the command as the user wrote it; logs and errors use it.
	Name string
	// Short names it in log lines about what it left running: its
	// program's base name, with #N when several share it.
	Short string
	// Prefix, when not empty and there is no TTY, is written before each
	// line it prints.
	Prefix string
	Argv   []string
	// Child, when set, is its registry entry, kept up to date while it
	// runs.
	Child *registry.Child
}

// Policy says what a failed task does to the run.
type Policy string

const (
	// Stop ends the run at the first failed task.
	Stop Policy = "stop"
	// Continue logs a failed task and runs the next one.
	Continue Policy = "continue"
)

// Config says how to run the tasks.
type Config struct {
	// Timeout bounds each task; 0 means none.
	Timeout   time.Duration
	OnFailure Policy
	// Runner starts each task (the program's reaper, or one that adds the
	// --user user's environment and credentials to its Spec).
	Runner reaper.Runner
	// TTY, when not nil, is the controlling terminal: each task runs as its
	// foreground job, with the terminal as its output, unprefixed.
	TTY *os.File
	// Reclaim, when set, is called after each task that had the terminal,
	// to take the terminal back as a shell does when a foreground job ends.
	Reclaim func()
	Log     *slog.Logger
	// OnContinue, when set, is called for each task that failed under
	// Continue, after it is logged.
	OnContinue func(*Error)
	// Retries is how many times a failed task is run again before it
	// counts as failed. A task that cannot start (126, 127) is not run
	// again; a timeout is a failure like any other.
	Retries int
	// NewBackOff returns the delays between the tries of one task; it is
	// called once per task. Nil, with Retries > 0, means no delay.
	NewBackOff func() backoff.BackOff
	// Kind names the tasks in log lines and errors: "helper" (the default,
	// when empty) or "before task".
	Kind string
}

func (c Config) kind() string {
	if c.Kind == "" {
		return "helper"
	}
	return c.Kind
}

// Error is a task that failed.
type Error struct {
	Task Task
	// Kind is the Config's Kind: "helper" or "before task".
	Kind string
	// Tries is how many times the task ran (1 without retries).
	Tries int
	// Exit is how the task ended, when it ran.
	Exit reaper.Exit
	// Err is why it could not start, when it did not.
	Err error
	// TimedOut is set when the task outlived its timeout and was killed.
	TimedOut time.Duration
}

func (e *Error) Error() string {
	kind := e.Kind
	if kind == "" {
		kind = "helper"
	}
	var msg string
	switch {
	case e.Err != nil:
		msg = e.Err.Error()
	case e.TimedOut > 0:
		msg = fmt.Sprintf("timed out after %s", e.TimedOut)
	default:
		msg = e.Exit.String()
	}
	if e.Tries > 1 {
		msg += fmt.Sprintf(" (after %d tries)", e.Tries)
	}
	return fmt.Sprintf("%s %q: %s", kind, e.Task.Name, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs the tasks in order. It returns nil when every task succeeded (or
// failed under Continue), a *Error for the task that failed under Stop, and
// context.Cause(ctx) when ctx is done first; the running task is killed then.
func Run(ctx context.Context, tasks []Task, cfg Config) error {
	for i, t := range tasks {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		err := runTries(ctx, t, cfg)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if cfg.OnFailure == Continue {
			cfg.Log.Warn(cfg.kind()+" failed; continuing", "helper", t.Name, "err", err, "tries", err.Tries, "remaining", len(tasks)-i-1)
			if cfg.OnContinue != nil {
				cfg.OnContinue(err)
			}
			continue
		}
		return err
	}
	return nil
}

// runTries runs t up to 1+cfg.Retries times, until it succeeds, waiting
// cfg.NewBackOff's delays in between. It returns the last failure. A stop
// (ctx done) ends the tries at once, during a try or a delay.
func runTries(ctx context.Context, t Task, cfg Config) *Error {
	var b backoff.BackOff = &backoff.ZeroBackOff{}
	if cfg.NewBackOff != nil {
		b = cfg.NewBackOff()
	}
	b.Reset()
	for try := 1; ; try++ {
		err := run(ctx, t, cfg)
		if err == nil {
			return nil
		}
		err.Kind, err.Tries = cfg.Kind, try
		if ctx.Err() != nil || err.Err != nil || try > cfg.Retries {
			return err
		}
		d := b.NextBackOff()
		args := []any{"helper", t.Name, "try", try, "tries", cfg.Retries + 1}
		if err.TimedOut == 0 {
			args = append(args, "exit_code", err.Exit.Code()) // the task's own; mainstay's is the lifecycle's
		}
		cfg.Log.Warn(cfg.kind()+" failed; retrying", append(args, "err", err, "delay", d)...)
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
	}
}

func run(ctx context.Context, t Task, cfg Config) *Error {
	tctx := ctx
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	// The reaper bounds how long the output is still copied once the task
	// exited: a background process it left holding the pipe (reaper's
	// "left running by" line) does not hold up the next task.
	spec := reaper.Spec{
		Name:  cfg.kind() + " " + t.Short,
		Argv:  t.Argv,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
	}
	if cfg.TTY != nil {
		spec.Terminal = cfg.TTY
	} else {
		spec.Prefix = t.Prefix
	}
	start := time.Now()
	cfg.Log.Info(cfg.kind()+" started", "helper", t.Name)
	spec.Started = func(pid int) { t.Child.Started(pid, start, registry.Running) }
	exit, err := cfg.Runner.Run(tctx, spec)
	if err == nil {
		t.Child.Exited(exit, time.Now(), registry.Exited)
	} else {
		t.Child.Set(registry.Exited)
	}
	if cfg.TTY != nil && cfg.Reclaim != nil {
		cfg.Reclaim()
	}
	if err != nil {
		return &Error{Task: t, Err: err}
	}
	elapsed := time.Since(start).Round(time.Millisecond)
	// A timeout only when the task was killed for it: one that exited on
	// its own an instant before the deadline has its own result.
	if exit.Cancelled() && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		return &Error{Task: t, Exit: exit, TimedOut: cfg.Timeout}
	}
	if !exit.Success() {
		return &Error{Task: t, Exit: exit}
	}
	cfg.Log.Info(cfg.kind()+" succeeded", "helper", t.Name, "elapsed", elapsed)
	return nil
}

// Dir lists the tasks in dir, the /docker-entrypoint.d convention: every
// executable regular file (symbolic links followed), in lexical order, each
// run without arguments. Other entries are skipped with a warning.
func Dir(dir string, log *slog.Logger) ([]Task, error) {
	ents, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("helpers directory: %w", err)
	}
	var tasks []Task
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			log.Warn("skipping helpers-dir entry", "path", path, "err", err)
		case !fi.Mode().IsRegular():
			log.Warn("skipping helpers-dir entry: not a regular file", "path", path)
		case fi.Mode().Perm()&0o111 == 0:
			log.Warn("skipping helpers-dir entry: not executable", "path", path)
		default:
			tasks = append(tasks, Task{Name: path, Argv: []string{path}})
		}
	}
	return tasks, nil
}
