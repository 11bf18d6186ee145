// Command mainstay is a container entrypoint: it starts the main process,
// waits until it is ready, runs helper tasks in order, then keeps main in
// the foreground — reaping zombies, forwarding signals and exiting with
// main's exit code. See docs/usage.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/helpers"
	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper"
)

// version is set at build time with -ldflags "-X main.version=..."; it
// falls back to the module version Go recorded.
var version = ""

func main() {
	// One P while mainstay starts main and polls its probes; two once
	// main is in the foreground (see run). Set here, not in the
	// environment, which main would inherit; setting it also stops the
	// runtime's periodic update from the cgroup's CPU limit, and keeps a
	// big host from giving a PID 1 that mostly sleeps dozens of Ps.
	runtime.GOMAXPROCS(1)
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(health(os.Args[2:], os.Stdout, os.Stderr))
	}
	keepWritesFromKilling()
	// Log lines are written while main has the terminal too.
	os.Exit(run(os.Args[1:], mainproc.ForegroundSafe(os.Stderr)))
}

// keepWritesFromKilling subscribes to SIGPIPE. Without a subscription, the
// Go runtime kills the program when a write to fd 1 or 2 fails with EPIPE
// (a closed log pipe, "mainstay ... | head"): mainstay would die with main
// orphaned, or as PID 1 exit 2 and take main down with it. Subscribed, the
// write just fails, and mainstay goes on supervising. Notify rather than
// Ignore: SIG_IGN would be inherited by every child. The channel is never
// read; its one slot fills and later SIGPIPEs are dropped.
func keepWritesFromKilling() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}

// run is mainstay from parsed arguments to exit code, its whole lifecycle
// top to bottom: sidecars (start=before) → --wait-for → --before → main →
// --ready → helpers → sidecars (start=after) → foreground → stop (main,
// then sidecars in reverse, then the sweep, in one --grace budget). It is
// the only place that decides exit codes; main calls os.Exit with its
// result.
func run(args []string, stderr io.Writer) int {
	cli, err := parse(args, buildVersion())
	if err != nil {
		fmt.Fprintf(stderr, "mainstay: error: %v\n", err)
		return 2
	}
	if code, err := cli.checkPrograms(); err != nil {
		fmt.Fprintf(stderr, "mainstay: error: %v\n", err)
		return code
	}
	log, setPhase := newLogger(stderr, cli.LogFormat, cli.LogLevel)
	files, err := cli.openStateFiles()
	if err != nil {
		fmt.Fprintf(stderr, "mainstay: error: %v\n", err)
		return 2
	}
	defer files.marker.close()
	rf := files.ready
	up := readiness.TakeNotifySocket(log) // before any child starts: none inherits it
	if err := rf.set(stateStarting); err != nil {
		rf.close()
		fmt.Fprintf(stderr, "mainstay: error: --ready-file: %v\n", err)
		return 2
	}
	defer rf.clear()

	r, err := reaper.Start(log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	sigs := mainproc.Subscribe()
	for _, s := range mainproc.Inherited() {
		log.Info("signal ignored when mainstay started: left ignored, for main and every child too", "signal", mainproc.SignalName(s))
	}
	tty := mainproc.OpenTerminal()

	// Whatever ends start-up early cancels ctx with its cause: a stop
	// signal before main exists, main's exit or an aborting signal, an
	// essential sidecar that ended. Afterwards a sidecar's end still does.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sc := &sidecars{cli: cli, r: r, log: log, ended: func(e *sidecarError) { cancel(e) }}

	// Before main: sidecars that start first, the dependencies, the
	// --before tasks. Nothing of main exists yet.
	if err := cli.beforeMain(ctx, cancel, r, sc, sigs, tty, log, setPhase); err != nil {
		setPhase(phaseStop)
		code := exitCode(err, false, reaper.Exit{}, log)
		sc.stopAll(time.Now().Add(cli.Grace))
		return code
	}

	setPhase(phaseStart)
	argv := cli.mainArgv()
	opts := mainproc.Options{
		StopSignal: syscall.Signal(cli.StopSignal),
		Grace:      cli.Grace,
		Group:      cli.SignalGroup,
		Credential: cli.User.cred,
		Env:        cli.User.environ(),
	}
	opts.Stdout, opts.Stderr = cli.logWatchers()
	nt := readiness.NotifyOf(cli.Ready)
	if nt != nil {
		if err := nt.Listen(); err != nil {
			log.Error("cannot start", "err", err)
			sc.stopAll(time.Now().Add(cli.Grace))
			return 1
		}
		defer nt.Close()
		opts.Env = append(opts.Env[:len(opts.Env):len(opts.Env)], nt.Env())
	}
	p, err := mainproc.Start(r, sigs, argv, opts, log)
	if err != nil {
		log.Error("cannot start main", "argv", argv, "err", err)
		sc.stopAll(time.Now().Add(cli.Grace))
		return reaper.StartFailureCode(err)
	}
	log.Info("main started", "pid", p.PID(), "argv", argv)
	if nt != nil {
		nt.Start(p.PID(), cli.User.uid(), log)
	}
	go func() {
		select {
		case <-p.Stopping():
		case <-p.Done():
		case <-nt.Stopping(): // main sent STOPPING=1
		}
		rf.set(stateStopping)
		up.Send("STOPPING=1")
	}()
	go func() {
		select {
		case <-p.Done():
			cancel(errMainExited)
		case <-p.Aborted():
			cancel(errAborted)
		case <-ctx.Done():
		}
	}()

	setPhase(phaseReadiness)
	err = readiness.Wait(ctx, cli.Ready, cli.probeConfig(r, cli.ReadyTimeout, log))
	if err == nil {
		setPhase(phaseHelpers)
		err = cli.runHelpers(ctx, files.marker, cli.taskConfig(r, tty, log))
	}
	if err == nil {
		err = sc.start(ctx, true)
	}
	if err != nil {
		setPhase(phaseStop)
		return failStartup(err, p, sc, cli, log)
	}
	h := &publisher{rf: rf, sc: sc, log: log, path: cli.ReadyFile}
	h.ready()
	up.Send("READY=1")

	setPhase(phaseRun)
	p.Foreground(tty)
	// Measured (docs/performance.md): a polled probe costs 20 % less CPU
	// with one P (no second P for the runtime to wake a thread for after
	// each attempt), reaping an orphan storm 27 % less with two: with
	// one, each time the reaper's waitid blocks, the runtime hands the
	// only P to a newly woken thread; with an idle second P it does not.
	runtime.GOMAXPROCS(2)
	log.Info("main in the foreground", "pid", p.PID())
	var why *sidecarError
	select {
	case <-p.Done():
	case <-ctx.Done():
		if errors.As(context.Cause(ctx), &why) {
			logSidecarEnd(why, log)
			p.Stop("sidecar " + why.name + " ended")
		}
	}
	exit := p.Wait()
	reclaim(tty, log)
	setPhase(phaseStop)
	log.Info("main exited", "pid", p.PID(), "exit_code", exit.Code(), "status", exit.String())
	sc.stopAll(stopDeadline(p, cli.Grace))
	p.FlushOutput(flushTimeout)
	if why != nil {
		return why.result.Code // the essential sidecar's exit caused the stop
	}
	return exit.Code()
}

// logSidecarEnd says which essential sidecar's end stops everything.
func logSidecarEnd(e *sidecarError, log *slog.Logger) {
	res := e.result
	switch {
	case res.Err != nil:
		log.Error("sidecar cannot start; stopping", "sidecar", e.name, "exit_code", res.Code, "err", res.Err)
	case res.GaveUp:
		log.Error("sidecar gave up; stopping", "sidecar", e.name, "restart", res.Restarts, "exit_code", res.Code, "status", res.Exit.String())
	case res.Code == 0:
		log.Info("sidecar ended; stopping", "sidecar", e.name, "exit_code", 0)
	default:
		log.Error("sidecar exited; stopping", "sidecar", e.name, "exit_code", res.Code, "status", res.Exit.String())
	}
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

// reclaim takes the terminal back once its foreground job (a helper, main)
// has ended, so mainstay's next log line cannot stop it.
func reclaim(tty *os.File, log *slog.Logger) {
	if err := mainproc.Reclaim(tty); err != nil {
		log.Warn("cannot take the terminal back", "err", err)
	}
}

// stopDeadline is the end of the stop's one budget, --grace: counted from
// when main was first asked to stop, or from now when main exited on its
// own. Leftover processes get what main left of it.
func stopDeadline(p *mainproc.Process, grace time.Duration) time.Time {
	if d := p.StopDeadline(); !d.IsZero() {
		return d
	}
	return time.Now().Add(grace)
}

// flushTimeout bounds the wait for main's copied output at exit; the sweep
// has already ended every process that could still write it.
const flushTimeout = time.Second

// logWatchers returns the writers that observe main's stdout and stderr
// for the log: probes, or nils when there is none.
func (c *CLI) logWatchers() (stdout, stderr io.Writer) {
	var outs, errs []io.Writer
	for _, pr := range c.Ready {
		if lp, ok := pr.(*readiness.Log); ok {
			outs, errs = append(outs, lp.Stream()), append(errs, lp.Stream())
		}
	}
	if len(outs) == 0 {
		return nil, nil
	}
	return io.MultiWriter(outs...), io.MultiWriter(errs...)
}

var (
	errMainExited = errors.New("main exited")
	errAborted    = errors.New("start-up aborted by a signal")
	errWaitFor    = errors.New("dependencies")
)

// signalError is a stop signal that arrived before main existed.
type signalError struct{ sig syscall.Signal }

func (e *signalError) Error() string { return "stopped by " + mainproc.SignalName(e.sig) }

// beforeMain starts the sidecars with start=before, each ready before the
// next, waits for the --wait-for dependencies, then runs the --before
// tasks, each to completion. It returns nil when main may start. SIGTERM,
// SIGINT or SIGQUIT meanwhile stop the running probe or task (its process
// group is killed) and make it return a *signalError; an essential sidecar
// that ends makes it return its *sidecarError.
func (c *CLI) beforeMain(ctx context.Context, cancel context.CancelCauseFunc, r *reaper.Reaper, sc *sidecars, sigs *mainproc.Signals, tty *os.File, log *slog.Logger, setPhase func(string)) error {
	stop := sigs.Watch(func(sig syscall.Signal) { cancel(&signalError{sig}) }, log)
	err := c.runBeforeMain(ctx, r, sc, tty, log, setPhase)
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

// runBeforeMain is beforeMain's work, in order, ended early when ctx is done.
func (c *CLI) runBeforeMain(ctx context.Context, r *reaper.Reaper, sc *sidecars, tty *os.File, log *slog.Logger, setPhase func(string)) error {
	if sc.any(false) {
		setPhase(phaseSidecars)
		if err := sc.start(ctx, false); err != nil {
			return err
		}
	}
	if len(c.WaitFor) > 0 {
		setPhase(phaseWaitFor)
		if err := readiness.Wait(ctx, c.WaitFor, c.probeConfig(r, c.waitForTimeout(), log)); err != nil {
			return fmt.Errorf("%w: %w", errWaitFor, err)
		}
	}
	if len(c.Before) == 0 {
		return nil
	}
	setPhase(phaseBefore)
	tasks := make([]helpers.Task, len(c.Before))
	for i, b := range c.Before {
		tasks[i] = helpers.Task{Name: b.line, Argv: b.argv}
	}
	cfg := c.taskConfig(r, tty, log)
	cfg.Kind = "before task"
	return helpers.Run(ctx, tasks, cfg)
}

// probeConfig says how to wait for --ready or --wait-for probes.
func (c *CLI) probeConfig(r *reaper.Reaper, timeout time.Duration, log *slog.Logger) readiness.Config {
	return readiness.Config{
		Timeout:        timeout,
		Interval:       c.ReadyInterval,
		MaxInterval:    c.ReadyMaxInterval,
		AttemptTimeout: c.ReadyAttemptTimeout,
		Runner:         c.User.runner(r),
		Log:            log,
	}
}

// taskConfig says how to run --before tasks and helpers.
func (c *CLI) taskConfig(r *reaper.Reaper, tty *os.File, log *slog.Logger) helpers.Config {
	return helpers.Config{
		Timeout:    c.HelperTimeout,
		OnFailure:  helpers.Policy(c.OnHelperFailure),
		Runner:     c.User.runner(r),
		TTY:        tty,
		Reclaim:    func() { reclaim(tty, log) },
		Prefix:     c.HelperPrefix,
		Log:        log,
		Retries:    c.HelperRetries,
		NewBackOff: c.restartBackOff,
	}
}

// restartBackOff is the schedule of delays between the tries of a task:
// --restart-delay, doubling up to --restart-max-delay, each ±20 %; it never
// gives up by itself (backoff/v4 would after 15 minutes by default).
func (c *CLI) restartBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(c.RestartDelay),
		backoff.WithMaxInterval(c.RestartMaxDelay),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(readiness.RandomizationFactor),
		backoff.WithMaxElapsedTime(0),
	)
	return b
}

// exitCode is the one place that maps why start-up ended early to
// mainstay's exit code, logging the reason. started says whether main was
// started; main is its exit, for the cases where main's own code is the
// answer (main exited, or a signal aborted start-up after main started).
func exitCode(err error, started bool, main reaper.Exit, log *slog.Logger) int {
	var (
		notReady *readiness.NotReadyError
		task     *helpers.Error
		sig      *signalError
		side     *sidecarError
		late     *sidecarNotReady
	)
	switch {
	case errors.Is(err, errMainExited), errors.Is(err, errAborted):
		return main.Code()
	case errors.As(err, &side):
		logSidecarEnd(side, log)
		return side.result.Code
	case errors.As(err, &late):
		log.Error("sidecar not ready in time; main not started", "sidecar", late.name, "err", err)
		return 124
	case errors.As(err, &sig):
		// No main to take the code from: as a shell reports a command
		// killed by the signal.
		log.Info("stopped before main started", "signal", mainproc.SignalName(sig.sig), "exit_code", 128+int(sig.sig))
		return 128 + int(sig.sig)
	case errors.As(err, &notReady):
		for _, f := range notReady.Failing {
			log.Error("probe still failing", "probe", f.Probe.String(), "err", f.Err)
		}
		if errors.Is(err, errWaitFor) {
			log.Error("dependencies not ready in time; main not started", "err", err)
		} else {
			log.Error("main not ready in time; stopping it", "err", err)
		}
		return 124
	case errors.As(err, &task) && task.Kind == "before task":
		log.Error("before task failed; main not started", "helper", task.Task.Name, "exit_code", task.ExitCode(), "tries", task.Tries, "err", err)
		return task.ExitCode()
	case errors.As(err, &task):
		log.Error("helper failed; stopping main", "helper", task.Task.Name, "exit_code", task.ExitCode(), "tries", task.Tries, "err", err)
		return task.ExitCode()
	}
	// A probe that can never pass, or --helpers-dir unreadable.
	if started {
		log.Error("start-up failed; stopping main", "err", err)
	} else {
		log.Error("start-up failed; main not started", "err", err)
	}
	return reaper.StartFailureCode(err)
}

// failStartup stops main after readiness or a helper failed, or main
// exited, sweeps, and returns the exit code for err.
func failStartup(err error, p *mainproc.Process, sc *sidecars, cli *CLI, log *slog.Logger) int {
	if !errors.Is(err, errMainExited) && !errors.Is(err, errAborted) {
		// Say why before main is signalled.
		code := exitCode(err, true, reaper.Exit{}, log)
		p.Stop("start-up failed")
		exit := p.Wait()
		log.Info("main exited", "pid", p.PID(), "exit_code", exit.Code(), "status", exit.String())
		sc.stopAll(stopDeadline(p, cli.Grace))
		p.FlushOutput(flushTimeout)
		return code
	}
	p.Stop("start-up failed")
	exit := p.Wait()
	switch {
	case errors.Is(err, errAborted):
		log.Info("main exited", "pid", p.PID(), "exit_code", exit.Code(), "status", exit.String())
	case exit.Success():
		log.Warn("main exited during start-up", "pid", p.PID(), "exit_code", 0, "status", exit.String())
	default:
		log.Error("main exited during start-up", "pid", p.PID(), "exit_code", exit.Code(), "status", exit.String())
	}
	code := exitCode(err, true, exit, log)
	sc.stopAll(stopDeadline(p, cli.Grace))
	p.FlushOutput(flushTimeout)
	return code
}

// runHelpers runs the --helper commands, then those in --helpers-dir,
// unless the --once-marker existed at start-up; it creates the marker once
// every helper succeeded. A nil marker is no --once-marker.
func (c *CLI) runHelpers(ctx context.Context, marker *onceMarker, cfg helpers.Config) error {
	if marker != nil && marker.done {
		cfg.Log.Info("once marker exists: skipping the helpers", "path", marker.path)
		return nil
	}
	tasks := make([]helpers.Task, len(c.Helper))
	for i, h := range c.Helper {
		tasks[i] = helpers.Task{Name: h.line, Argv: h.argv}
	}
	if c.HelpersDir != "" {
		more, err := helpers.Dir(c.HelpersDir, cfg.Log)
		if err != nil {
			return err
		}
		tasks = append(tasks, more...)
	}
	failed := 0
	cfg.OnContinue = func(*helpers.Error) { failed++ }
	if err := helpers.Run(ctx, tasks, cfg); err != nil {
		return err
	}
	if marker == nil {
		return nil
	}
	if failed > 0 {
		cfg.Log.Warn("a helper failed: once marker not written, the helpers run again at the next start", "path", c.OnceMarker, "failed", failed)
		return nil
	}
	// A marker that cannot be written costs a re-run at the next start,
	// not this one: main keeps running.
	if err := marker.write(time.Now().UTC().Format(time.RFC3339) + "\n"); err != nil {
		cfg.Log.Error("cannot write the once marker: the helpers will run again at the next start", "path", c.OnceMarker, "err", err)
	} else {
		cfg.Log.Info("once marker written", "path", c.OnceMarker)
	}
	return nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	v := "devel"
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			v += " " + s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			v += "+dirty"
		}
	}
	return v
}
