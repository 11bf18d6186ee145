package lifecycle

import (
	"errors"
	"log/slog"
	"syscall"

	"github.com/mainstay-dev/mainstay/helpers"
	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/main/plan"
	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper"
)

// Outcome is how a run of mainstay ended: [Outcome.Code] turns it into
// the exit code, the one place that decides it.
type Outcome struct {
	// Err is why the run ended other than by main's own end in the
	// foreground: bad usage, a failed task, a probe not passed in time, an
	// essential sidecar that ended, main's exit during start-up
	// ([ErrMainExited]), a stop signal. Nil when main exited in the
	// foreground, by itself or asked by a forwarded signal.
	Err error
	// Main is main's exit, once main was started.
	Main *reaper.Exit
}

// Usage is the outcome of bad usage (flags, environment, files): exit 2,
// nothing started.
func Usage(err error) Outcome { return Outcome{Err: &usageError{err}} }

// Help is the outcome of --help and --version: exit 0, nothing started.
var Help = Outcome{Err: errHelp}

type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

var (
	errHelp = errors.New("help printed")
	// ErrMainExited: main exited during start-up (readiness or helpers).
	ErrMainExited = errors.New("main exited")
	// errAborted: SIGTERM, SIGINT or SIGQUIT during start-up, once main
	// was started.
	errAborted = errors.New("start-up aborted by a signal")
	// errWaitFor marks a --wait-for timeout, against main's --ready one.
	errWaitFor = errors.New("dependencies")
)

// signalError is a stop signal that arrived before main existed.
type signalError struct{ sig syscall.Signal }

func (e *signalError) Error() string { return "stopped by " + mainproc.SignalName(e.sig) }

// internalError is mainstay failing itself (no reaper, no notify socket).
type internalError struct {
	what string
	err  error
}

func (e *internalError) Error() string { return e.what + ": " + e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }

// mainStartError is main that could not be started.
type mainStartError struct {
	argv []string
	err  error
}

func (e *mainStartError) Error() string { return e.err.Error() }
func (e *mainStartError) Unwrap() error { return e.err }

// Code is the exit code for the outcome. It is the only place in mainstay
// that maps what happened to an exit code:
//
//	--help, --version                         0
//	main ended (in any phase)                 main's code (128+N for signal N)
//	bad usage                                 2
//	mainstay itself cannot run                1
//	a program cannot be found / executed      127 / 126
//	not ready in time (main, dependencies,
//	a start=before sidecar), task timed out   124
//	a task failed (policy stop)               the task's code
//	an essential sidecar ended                the sidecar's code (127/126 if it cannot start)
//	a stop signal N before main started       128+N
func (o Outcome) Code() int {
	var (
		usage    *usageError
		internal *internalError
		notReady *readiness.NotReadyError
		task     *helpers.Error
		sig      *signalError
		side     *sidecarError
		late     *sidecarNotReady
		program  *plan.ProgramError
	)
	err := o.Err
	switch {
	case err == nil, errors.Is(err, ErrMainExited), errors.Is(err, errAborted):
		if o.Main == nil {
			return 1 // cannot happen: these follow main's start
		}
		return o.Main.Code()
	case errors.Is(err, errHelp):
		return 0
	case errors.As(err, &usage):
		return 2
	case errors.As(err, &internal):
		return 1
	case errors.As(err, &side):
		return sidecarCode(side.result)
	case errors.As(err, &late), errors.As(err, &notReady):
		return 124
	case errors.As(err, &sig):
		// No main to take the code from: as a shell reports a command
		// killed by the signal.
		return 128 + int(sig.sig)
	case errors.As(err, &task):
		switch {
		case task.Err != nil:
			return reaper.StartFailureCode(task.Err)
		case task.TimedOut > 0:
			return 124
		}
		return task.Exit.Code()
	case errors.As(err, &program):
		return reaper.StartFailureCode(err)
	}
	// main that cannot start, a probe that can never pass, --helpers-dir
	// unreadable.
	return reaper.StartFailureCode(err)
}

// sidecarCode is an ended sidecar's code: its exit's, or that of a
// program that cannot start.
func sidecarCode(res mainproc.SidecarResult) int {
	if res.Err != nil {
		return reaper.StartFailureCode(res.Err)
	}
	return res.Exit.Code()
}

// explain logs why start-up or the run ended, with the exit code it
// gives; main's own end is logged where main is waited for.
func explain(o Outcome, started bool, log *slog.Logger) {
	var (
		notReady *readiness.NotReadyError
		task     *helpers.Error
		sig      *signalError
		side     *sidecarError
		late     *sidecarNotReady
		internal *internalError
		start    *mainStartError
	)
	err, code := o.Err, o.Code()
	switch {
	case err == nil, errors.Is(err, ErrMainExited), errors.Is(err, errAborted):
	case errors.As(err, &start):
		log.Error("cannot start main", "argv", start.argv, "err", start.err)
	case errors.As(err, &internal):
		log.Error("cannot start", "err", err)
	case errors.As(err, &side):
		logSidecarEnd(side, log)
	case errors.As(err, &late):
		log.Error("sidecar not ready in time; main not started", "sidecar", late.name, "err", err)
	case errors.As(err, &sig):
		log.Info("stopped before main started", "signal", mainproc.SignalName(sig.sig), "exit_code", code)
	case errors.As(err, &notReady):
		for _, f := range notReady.Failing {
			log.Error("probe still failing", "probe", f.Probe.String(), "err", f.Err)
		}
		if errors.Is(err, errWaitFor) {
			log.Error("dependencies not ready in time; main not started", "err", err)
		} else {
			log.Error("main not ready in time; stopping it", "err", err)
		}
	case errors.As(err, &task) && task.Kind == "before task":
		log.Error("before task failed; main not started", "helper", task.Task.Name, "exit_code", code, "tries", task.Tries, "err", err)
	case errors.As(err, &task):
		log.Error("helper failed; stopping main", "helper", task.Task.Name, "exit_code", code, "tries", task.Tries, "err", err)
	case started:
		log.Error("start-up failed; stopping main", "err", err)
	default:
		log.Error("start-up failed; main not started", "err", err)
	}
}

// logSidecarEnd says which essential sidecar's end stops everything.
func logSidecarEnd(e *sidecarError, log *slog.Logger) {
	res := e.result
	code := sidecarCode(res)
	switch {
	case res.Err != nil:
		log.Error("sidecar cannot start; stopping", "sidecar", e.name, "exit_code", code, "err", res.Err)
	case res.GaveUp:
		log.Error("sidecar gave up; stopping", "sidecar", e.name, "restart", res.Restarts, "exit_code", code, "status", res.Exit.String())
	case code == 0:
		log.Info("sidecar ended; stopping", "sidecar", e.name, "exit_code", 0)
	default:
		log.Error("sidecar exited; stopping", "sidecar", e.name, "exit_code", code, "status", res.Exit.String())
	}
}
