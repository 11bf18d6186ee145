package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/helpers"
	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/main/plan"
	"github.com/mainstay-dev/mainstay/main/registry"
	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper"
)

// Run runs the plan, mainstay's whole lifecycle top to bottom, and returns
// how it ended: sidecars (start=before) → --wait-for → --before → main →
// --ready → helpers → sidecars (start=after) → the scheduled entries'
// first runs fall due → foreground → the stop (no run starts; main, then
// the running scheduled runs, then sidecars in reverse, then the sweep,
// in one --grace budget).
// Whatever ends it, the stop is [life.stop]'s, and the exit code is
// [Outcome.Code]'s. stderr receives mainstay's log (written while main has
// the terminal too, when it is one).
func Run(p *plan.Plan, stderr io.Writer) Outcome {
	if f, ok := stderr.(*os.File); ok {
		stderr = mainproc.ForegroundSafe(f)
	}
	log, setPhase := newLogger(stderr, p.LogFormat, p.LogLevel)
	files, err := openStateFiles(p)
	if err != nil {
		fmt.Fprintf(stderr, "mainstay: error: %v\n", err)
		return Usage(err)
	}
	defer files.marker.close()
	rf := files.ready
	up := readiness.NewUpstream(p.NotifySocket, log)
	if err := rf.set(stateStarting); err != nil {
		rf.close()
		err = fmt.Errorf("%s: %w", p.ReadyFileSource, err)
		fmt.Fprintf(stderr, "mainstay: error: %v\n", err)
		return Usage(err)
	}
	defer rf.clear()
	// "starting" is published first: a health check from here on sees
	// this run, not the state a killed one left.
	if err := p.CheckPrograms(); err != nil {
		fmt.Fprintf(stderr, "mainstay: error: %v\n", err)
		return Outcome{Err: err}
	}
	ctl, err := listenControl(p, log, stderr)
	if err != nil {
		return Usage(err)
	}
	defer ctl.close() // after the sweep: l.stop returns first

	r, err := reaper.Start(log)
	if err != nil {
		o := Outcome{Err: &internalError{"reaper", err}}
		explain(o, false, log)
		return o
	}
	if err := p.CheckDaemons(r.Subreaper()); err != nil {
		fmt.Fprintf(stderr, "mainstay: error: %v\n", err)
		return Usage(err)
	}
	l := &life{plan: p, reaper: r, log: log, setPhase: setPhase, registry: registry.New(), ctl: ctl}
	if l.crons, err = newCrons(l); err != nil {
		o := Outcome{Err: &internalError{"cron", err}}
		explain(o, false, log)
		return o
	}
	ctl.attach(l)
	l.sigs = mainproc.Subscribe()
	for _, s := range mainproc.Inherited() {
		log.Info("signal ignored when mainstay started: left ignored, for main and every child too", "signal", mainproc.SignalName(s))
	}
	l.tty = mainproc.OpenTerminal()

	// Whatever ends start-up early cancels ctx with its cause: a stop
	// signal before main exists, main's exit or an aborting signal, an
	// essential sidecar that ended. Afterwards a sidecar's end still does.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	l.sidecars = &sidecars{l: l, ended: func(e *sidecarError) { cancel(e) }}

	// Before main: sidecars that start first, the dependencies, the
	// --before tasks. Nothing of main exists yet.
	if err := l.beforeMain(ctx, cancel); err != nil {
		return l.stop(Outcome{Err: err})
	}

	setPhase(phaseStart)
	if err := l.startMain(rf, up); err != nil {
		return l.stop(Outcome{Err: err})
	}
	main := l.main
	go func() {
		select {
		case <-main.Done():
			cancel(ErrMainExited)
		case <-main.Aborted():
			cancel(errAborted)
		case <-ctx.Done():
		}
	}()

	setPhase(phaseReadiness)
	err = readiness.Wait(ctx, p.Ready, l.probeConfig(p.ReadyTimeout, log, nil))
	if err == nil {
		l.mainChild.Set(registry.Running)
		setPhase(phaseHelpers)
		err = l.runHelpers(ctx, files.marker)
	}
	if err == nil {
		err = l.sidecars.start(ctx, true)
	}
	if err != nil {
		return l.stop(Outcome{Err: err})
	}
	(&publisher{rf: rf, sc: l.sidecars, log: log, path: p.ReadyFile}).ready()
	ctl.ready()
	up.Send("READY=1")

	setPhase(phaseRun)
	l.crons.start() // the first runs fall due once main is ready and the helpers are done
	main.Foreground(l.tty)
	// Measured (docs/performance.md): a polled probe costs 20 % less CPU
	// with one P (no second P for the runtime to wake a thread for after
	// each attempt), reaping an orphan storm 27 % less with two: with
	// one, each time the reaper's waitid blocks, the runtime hands the
	// only P to a newly woken thread; with an idle second P it does not.
	runtime.GOMAXPROCS(2)
	log.Info("main in the foreground", "pid", main.PID())
	select {
	case <-main.Done():
		return l.stop(Outcome{})
	case <-ctx.Done():
		err := context.Cause(ctx)
		if errors.Is(err, ErrMainExited) { // raced with main.Done
			err = nil
		}
		return l.stop(Outcome{Err: err})
	}
}

// life is one run's processes and what they share.
type life struct {
	plan     *plan.Plan
	reaper   *reaper.Reaper
	log      *slog.Logger
	setPhase func(string)
	registry *registry.Registry
	sigs     *mainproc.Signals
	tty      *os.File
	sidecars *sidecars
	crons    *crons
	ctl      *controller // the control socket's handler

	main      *mainproc.Process // nil until main started
	mainChild *registry.Child
	notify    *readiness.Notify // main's, with --ready notify
}

// stop ends the run for outcome o: it says why (before main is signalled,
// when main's end is not the reason), halts the scheduled entries (no run
// starts from then on), stops main and waits for it, sends the running
// scheduled runs SIGTERM, stops the sidecars in reverse order, waits for
// the scheduled runs, sweeps every leftover, all within the one --grace
// budget, and returns o with main's exit. It is the only code that stops
// mainstay's children.
func (l *life) stop(o Outcome) Outcome {
	l.ctl.stop()
	mains := o.Err == nil || errors.Is(o.Err, ErrMainExited) || errors.Is(o.Err, errAborted)
	if !mains {
		var side *sidecarError
		if errors.As(o.Err, &side) && l.main != nil {
			logSidecarEnd(side, l.log)
		} else {
			l.setPhase(phaseStop)
			explain(o, l.main != nil, l.log)
		}
	}
	l.crons.halt()
	deadline := time.Now().Add(l.plan.Grace)
	if l.main != nil {
		l.main.Stop(stopReason(o))
		exit := l.main.Wait()
		l.reclaim()
		l.setPhase(phaseStop)
		l.logMainExit(o, exit)
		o.Main = &exit
		if d := l.main.StopDeadline(); !d.IsZero() {
			deadline = d // the budget runs from main's first stop signal
		} else {
			deadline = time.Now().Add(l.plan.Grace)
		}
	}
	l.setPhase(phaseStop)
	l.notify.Close()
	l.crons.stop()
	l.sidecars.stop(deadline)
	l.crons.wait(deadline)
	l.reaper.Sweep(deadline)
	if l.main != nil {
		l.main.FlushOutput(flushTimeout)
	}
	return o
}

// stopReason is what main is told it is stopped for, in the log.
func stopReason(o Outcome) string {
	var side *sidecarError
	if errors.As(o.Err, &side) {
		return "sidecar " + side.name + " ended"
	}
	return "start-up failed"
}

// logMainExit logs main's exit: a warning or an error when it exited
// during start-up on its own.
func (l *life) logMainExit(o Outcome, exit reaper.Exit) {
	l.mainChild.Exited(exit, time.Now(), registry.Exited)
	args := []any{"pid", l.main.PID(), "exit_code", exit.Code(), "status", exit.String()}
	switch {
	case !errors.Is(o.Err, ErrMainExited):
		l.log.Info("main exited", args...)
	case exit.Success():
		l.log.Warn("main exited during start-up", args...)
	default:
		l.log.Error("main exited during start-up", args...)
	}
}

// flushTimeout bounds the wait for main's copied output at exit; the sweep
// has already ended every process that could still write it.
const flushTimeout = time.Second

// beforeMain starts the sidecars with start=before, each ready before the
// next, waits for the --wait-for dependencies, then runs the --before
// tasks, each to completion. It returns nil when main may start. SIGTERM,
// SIGINT or SIGQUIT meanwhile stop the running probe or task (its process
// group is killed) and make it return a *signalError; an essential sidecar
// that ends makes it return its *sidecarError.
func (l *life) beforeMain(ctx context.Context, cancel context.CancelCauseFunc) error {
	stop := l.sigs.Watch(func(sig syscall.Signal) { cancel(&signalError{sig}) }, l.log)
	err := func() error {
		p := l.plan
		if l.sidecars.any(false) {
			l.setPhase(phaseSidecars)
			if err := l.sidecars.start(ctx, false); err != nil {
				return err
			}
		}
		if len(p.WaitFor) > 0 {
			l.setPhase(phaseWaitFor)
			if err := readiness.Wait(ctx, p.WaitFor, l.probeConfig(p.WaitForTimeout, l.log, nil)); err != nil {
				return fmt.Errorf("%w: %w", errWaitFor, err)
			}
		}
		if len(p.Before) == 0 {
			return nil
		}
		l.setPhase(phaseBefore)
		cfg := l.taskConfig()
		cfg.Kind = "before task"
		return helpers.Run(ctx, l.tasks(p.Before, registry.Before), cfg)
	}()
	// Once stop returns, main's signal loop may take the subscription
	// over. A stop signal that arrived as the last step ended has
	// cancelled ctx too late for that step to see it: it still aborts,
	// instead of being lost with main started unasked.
	stop()
	if cause := context.Cause(ctx); cause != nil && err == nil {
		return cause
	}
	return err
}

// startMain starts main, with its notify socket when --ready notify is
// given, and publishes "stopping" once main is asked to stop or exits.
func (l *life) startMain(rf *readyFile, up *readiness.Upstream) error {
	p := l.plan
	opts := mainproc.Options{
		StopSignal: p.StopSignal,
		Grace:      p.Grace,
		Group:      p.SignalGroup,
	}
	opts.Stdout, opts.Stderr = logWatchers(p.Ready)
	spec := l.spec(p.Main.Argv, nil)
	nt := readiness.NotifyOf(p.Ready)
	if nt != nil {
		if err := nt.Listen(); err != nil {
			return &internalError{"notify socket", err}
		}
		spec.Env = append(spec.Env[:len(spec.Env):len(spec.Env)], nt.Env())
	}
	l.mainChild = l.registry.Add("main", registry.Main)
	m, err := mainproc.Start(l.reaper, l.sigs, spec, opts, l.log)
	if err != nil {
		nt.Close()
		return &mainStartError{argv: p.Main.Argv, err: err}
	}
	l.main = m
	l.mainChild.Started(m.PID(), time.Now(), registry.Starting)
	l.log.Info("main started", "pid", m.PID(), "argv", p.Main.Argv)
	if nt != nil {
		nt.Start(m.PID(), p.User.UID(), l.log)
	}
	go func() {
		select {
		case <-m.Stopping():
		case <-m.Done():
		case <-nt.Stopping(): // main sent STOPPING=1
		}
		l.ctl.stop() // status says stopping through main's grace, not once main exited
		rf.set(stateStopping)
		up.Send("STOPPING=1")
	}()
	l.notify = nt
	return nil
}

// runHelpers runs the --helper commands, then those in --helpers-dir,
// unless the --once-marker existed at start-up; it creates the marker once
// every helper succeeded. A nil marker is no --once-marker.
func (l *life) runHelpers(ctx context.Context, marker *onceMarker) error {
	cfg := l.taskConfig()
	if marker != nil && marker.done {
		cfg.Log.Info("once marker exists: skipping the helpers", "path", marker.path)
		return nil
	}
	cmds := l.plan.Helpers
	if dir := l.plan.HelpersDir; dir != "" {
		more, err := helpers.Dir(dir, cfg.Log)
		if err != nil {
			return err
		}
		for _, t := range more {
			cmds = append(cmds, plan.Command{Line: t.Name, Argv: t.Argv})
		}
	}
	failed := 0
	cfg.OnContinue = func(*helpers.Error) { failed++ }
	if err := helpers.Run(ctx, l.tasks(cmds, registry.Helper), cfg); err != nil {
		return err
	}
	if marker == nil {
		return nil
	}
	if failed > 0 {
		cfg.Log.Warn("a helper failed: once marker not written, the helpers run again at the next start", "path", marker.path, "failed", failed)
		return nil
	}
	// A marker that cannot be written costs a re-run at the next start,
	// not this one: main keeps running.
	if err := marker.write(time.Now().UTC().Format(time.RFC3339) + "\n"); err != nil {
		cfg.Log.Error("cannot write the once marker: the helpers will run again at the next start", "path", marker.path, "err", err)
	} else {
		cfg.Log.Info("once marker written", "path", marker.path)
	}
	return nil
}

// tasks describes the commands as helper tasks, each entered in the
// registry under its short name.
func (l *life) tasks(cmds []plan.Command, kind registry.Kind) []helpers.Task {
	argv0s := make([]string, len(cmds))
	for i, c := range cmds {
		argv0s[i] = c.Argv[0]
	}
	names := plan.ShortNames(argv0s, nil)
	tasks := make([]helpers.Task, len(cmds))
	for i, c := range cmds {
		tasks[i] = helpers.Task{Name: c.Line, Short: names[i], Argv: c.Argv, Prefix: l.plan.Tasks.PrefixOf(names[i]),
			Child: l.registry.Add(string(kind)+" "+names[i], kind)}
	}
	return tasks
}

// user is the user a child of u runs as: u, or --user's.
func (l *life) user(u *plan.User) *plan.User {
	if u == nil {
		return l.plan.User
	}
	return u
}

// probeConfig says how to wait for probes, run as u (nil: --user's).
func (l *life) probeConfig(timeout time.Duration, log *slog.Logger, u *plan.User) readiness.Config {
	p := l.plan.Probing
	return readiness.Config{
		Timeout:        timeout,
		Interval:       p.Interval,
		MaxInterval:    p.MaxInterval,
		AttemptTimeout: p.AttemptTimeout,
		Runner:         asUser{r: l.reaper, base: l.spec(nil, u)},
		Log:            log,
	}
}

// taskConfig says how to run --before tasks and helpers.
func (l *life) taskConfig() helpers.Config {
	t := l.plan.Tasks
	return helpers.Config{
		Timeout:    t.Timeout,
		OnFailure:  helpers.Policy(t.OnFailure),
		Runner:     asUser{r: l.reaper, base: l.spec(nil, nil)},
		TTY:        l.tty,
		Reclaim:    l.reclaim,
		Log:        l.log,
		Retries:    t.Retries,
		NewBackOff: l.restartBackOff,
	}
}

// restartBackOff is the schedule of delays between the tries of a task and
// the restarts of a sidecar: --restart-delay, doubling up to
// --restart-max-delay, each ±20 %; it never gives up by itself (backoff/v4
// would after 15 minutes by default).
func (l *life) restartBackOff() backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(l.plan.Restart.Delay),
		backoff.WithMaxInterval(l.plan.Restart.MaxDelay),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(readiness.RandomizationFactor),
		backoff.WithMaxElapsedTime(0),
	)
}

// reclaim takes the terminal back once its foreground job (a helper, main)
// has ended, so mainstay's next log line cannot stop it.
func (l *life) reclaim() {
	if err := mainproc.Reclaim(l.tty); err != nil {
		l.log.Warn("cannot take the terminal back", "err", err)
	}
}

// logWatchers returns the writers that observe main's stdout and stderr
// for the log: probes, or nils when there is none.
func logWatchers(probes []readiness.Probe) (stdout, stderr io.Writer) {
	var outs, errs []io.Writer
	for _, pr := range probes {
		if lp, ok := pr.(*readiness.Log); ok {
			outs, errs = append(outs, lp.Stream()), append(errs, lp.Stream())
		}
	}
	if len(outs) == 0 {
		return nil, nil
	}
	return io.MultiWriter(outs...), io.MultiWriter(errs...)
}

// publisher publishes what "mainstay health" says once start-up is over:
// ready while every essential sidecar is running and ready, restarting
// while one is not.
type publisher struct {
	rf   *readyFile
	sc   *sidecars
	log  *slog.Logger
	path string

	mu   sync.Mutex
	last string
}

// ready ends start-up: from now on each sidecar state change updates the
// published state.
func (h *publisher) ready() {
	h.sc.mu.Lock()
	h.sc.health = h.update
	h.sc.mu.Unlock()
	h.update()
}

func (h *publisher) update() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sc.isStopping() {
		return // the stop has published "stopping" already
	}
	state := stateReady
	if h.sc.restarting() {
		state = stateRestarting
	}
	if state == h.last {
		return
	}
	h.last = state
	if err := h.rf.set(state); err != nil {
		h.log.Error("cannot write the ready file", "path", h.path, "err", err)
	} else if h.path != "" && state == stateReady {
		h.log.Info("ready file written", "path", h.path)
	} else if h.path != "" {
		h.log.Info("ready file removed: an essential sidecar is restarting", "path", h.path)
	}
}
