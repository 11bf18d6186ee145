package helpers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mainstay-dev/mainstay/reaper"
)

// Runner runs a command to completion and returns how it ended; when ctx is
// done first it kills the command's process group. *reaper.Reaper satisfies it.
type Runner interface {
	Run(ctx context.Context, cmd *exec.Cmd) (reaper.Exit, error)
}

// Task is one helper command.
type Task struct {
	// Name is the command as the user wrote it; logs and errors use it.
	Name string
	Argv []string
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
	Runner    Runner
	// TTY, when not nil, is the controlling terminal: each task runs as its
	// foreground job, with the terminal as its output, unprefixed.
	TTY *os.File
	// Reclaim, when set, is called after each task that had the terminal,
	// to take the terminal back as a shell does when a foreground job ends.
	Reclaim func()
	// Prefix, when not empty and there is no TTY, is written before each
	// line of a task's output; "{helper}" in it becomes the task's short
	// name (its program's base name, with "#N" when several share it).
	Prefix string
	Log    *slog.Logger
	// OnContinue, when set, is called for each task that failed under
	// Continue, after it is logged.
	OnContinue func(*Error)
}

// Error is a task that failed.
type Error struct {
	Task Task
	// Exit is how the task ended, when it ran.
	Exit reaper.Exit
	// Err is why it could not start, when it did not.
	Err error
	// TimedOut is set when the task outlived its timeout and was killed.
	TimedOut time.Duration
}

func (e *Error) Error() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("helper %q: %v", e.Task.Name, e.Err)
	case e.TimedOut > 0:
		return fmt.Sprintf("helper %q: timed out after %s", e.Task.Name, e.TimedOut)
	}
	return fmt.Sprintf("helper %q: %s", e.Task.Name, e.Exit)
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode is the code mainstay exits with for this failure: the task's own
// code (128+N for signal N), 124 on timeout, 127 or 126 when it could not
// start.
func (e *Error) ExitCode() int {
	switch {
	case e.Err != nil:
		return reaper.StartFailureCode(e.Err)
	case e.TimedOut > 0:
		return 124
	}
	return e.Exit.Code()
}

// Run runs the tasks in order. It returns nil when every task succeeded (or
// failed under Continue), a *Error for the task that failed under Stop, and
// context.Cause(ctx) when ctx is done first; the running task is killed then.
func Run(ctx context.Context, tasks []Task, cfg Config) error {
	names := shortNames(tasks)
	for i, t := range tasks {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		err := run(ctx, t, names[i], cfg)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if cfg.OnFailure == Continue {
			cfg.Log.Warn("helper failed; continuing", "helper", t.Name, "err", err, "remaining", len(tasks)-i-1)
			if cfg.OnContinue != nil {
				cfg.OnContinue(err)
			}
			continue
		}
		return err
	}
	return nil
}

// prefixDelay bounds how long a prefixed task's output is read after the
// task exited: a background process it left holding the pipe must not hold
// up the next task.
const prefixDelay = time.Second

func run(ctx context.Context, t Task, name string, cfg Config) *Error {
	tctx := ctx
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	cmd := exec.Command(t.Argv[0], t.Argv[1:]...)
	if cmd.Err != nil {
		return &Error{Task: t, Err: cmd.Err}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if cfg.TTY != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Foreground: true, Ctty: int(cfg.TTY.Fd())}
	} else if cfg.Prefix != "" {
		prefix := expandPrefix(cfg.Prefix, name)
		stdout := &prefixer{w: os.Stdout, prefix: prefix}
		stderr := &prefixer{w: os.Stderr, prefix: prefix}
		defer stdout.Flush()
		defer stderr.Flush()
		cmd.Stdout, cmd.Stderr = stdout, stderr
		cmd.WaitDelay = prefixDelay
	}
	start := time.Now()
	cfg.Log.Info("helper started", "helper", t.Name)
	exit, err := cfg.Runner.Run(tctx, cmd)
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
	cfg.Log.Info("helper succeeded", "helper", t.Name, "elapsed", elapsed)
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
