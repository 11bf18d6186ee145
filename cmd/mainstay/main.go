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
	"runtime/debug"
	"syscall"
	"time"

	"github.com/mainstay-dev/mainstay/helpers"
	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper"
)

// version is set at build time with -ldflags "-X main.version=..."; it
// falls back to the module version Go recorded.
var version = ""

func main() {
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(health(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is mainstay from parsed arguments to exit code. It is the only place
// that decides exit codes; main calls os.Exit with its result.
func run(args []string, stderr io.Writer) int {
	cli, err := parse(args, buildVersion())
	if err != nil {
		fmt.Fprintf(stderr, "mainstay: error: %v\n", err)
		return 2
	}
	log, setPhase := newLogger(stderr, cli.LogFormat, cli.LogLevel)
	up := readiness.TakeNotifySocket(log) // before any child starts: none inherits it
	rf := &readyFile{path: cli.ReadyFile}
	if err := rf.set(stateStarting); err != nil {
		fmt.Fprintf(stderr, "mainstay: error: --ready-file: %v\n", err)
		return 2
	}
	defer rf.clear()

	r, err := reaper.Start(log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	tty := mainproc.OpenTerminal()
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
			return 1
		}
		defer nt.Close()
		opts.Env = append(opts.Env[:len(opts.Env):len(opts.Env)], nt.Env())
	}
	p, err := mainproc.Start(r, argv, opts, log)
	if err != nil {
		log.Error("cannot start main", "argv", argv, "err", err)
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

	// Start-up ends early when main exits or a signal aborts it.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
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
	err = readiness.Wait(ctx, cli.Ready, readiness.Config{
		Timeout:        cli.ReadyTimeout,
		Interval:       cli.ReadyInterval,
		MaxInterval:    cli.ReadyMaxInterval,
		AttemptTimeout: cli.ReadyAttemptTimeout,
		Runner:         cli.User.runner(r),
		Log:            log,
	})
	if err == nil {
		setPhase(phaseHelpers)
		err = cli.runHelpers(ctx, helpers.Config{
			Timeout:   cli.HelperTimeout,
			OnFailure: helpers.Policy(cli.OnHelperFailure),
			Runner:    cli.User.runner(r),
			TTY:       tty,
			Prefix:    cli.HelperPrefix,
			Log:       log,
		})
	}
	if err != nil {
		setPhase(phaseStop)
		return failStartup(err, p, r, cli, log)
	}
	if err := rf.set(stateReady); err != nil {
		log.Error("cannot write the ready file", "path", cli.ReadyFile, "err", err)
	} else if cli.ReadyFile != "" {
		log.Info("ready file written", "path", cli.ReadyFile)
	}
	up.Send("READY=1")

	setPhase(phaseRun)
	p.Foreground(tty)
	log.Info("main in the foreground", "pid", p.PID())
	exit := p.Wait()
	setPhase(phaseStop)
	log.Info("main exited", "pid", p.PID(), "exit_code", exit.Code(), "status", exit.String())
	r.Sweep(cli.Grace)
	p.FlushOutput(flushTimeout)
	return exit.Code()
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
)

// failStartup stops main after readiness or a helper failed, sweeps, and
// returns the exit code for err.
func failStartup(err error, p *mainproc.Process, r *reaper.Reaper, cli *CLI, log *slog.Logger) int {
	var (
		notReady *readiness.NotReadyError
		helper   *helpers.Error
		code     int
	)
	switch {
	case errors.Is(err, errMainExited), errors.Is(err, errAborted):
		code = -1 // main's own
	case errors.As(err, &notReady):
		for _, f := range notReady.Failing {
			log.Error("probe still failing", "probe", f.Probe.String(), "err", f.Err)
		}
		log.Error("main not ready in time; stopping it", "err", err)
		code = 124
	case errors.As(err, &helper):
		log.Error("helper failed; stopping main", "helper", helper.Task.Name, "exit_code", helper.ExitCode(), "err", err)
		code = helper.ExitCode()
	default: // a probe that can never pass, or --helpers-dir unreadable
		log.Error("start-up failed; stopping main", "err", err)
		code = reaper.StartFailureCode(err)
	}
	p.Stop()
	exit := p.Wait()
	switch {
	case !errors.Is(err, errMainExited):
		log.Info("main exited", "pid", p.PID(), "exit_code", exit.Code(), "status", exit.String())
	case exit.Success():
		log.Warn("main exited during start-up", "pid", p.PID(), "exit_code", 0, "status", exit.String())
	default:
		log.Error("main exited during start-up", "pid", p.PID(), "exit_code", exit.Code(), "status", exit.String())
	}
	if code < 0 {
		code = exit.Code()
	}
	r.Sweep(cli.Grace)
	p.FlushOutput(flushTimeout)
	return code
}

// runHelpers runs the --helper commands, then those in --helpers-dir,
// unless the --once-marker exists; it creates the marker once every helper
// succeeded.
func (c *CLI) runHelpers(ctx context.Context, cfg helpers.Config) error {
	if c.OnceMarker != "" {
		if _, err := os.Stat(c.OnceMarker); err == nil {
			cfg.Log.Info("once marker exists: skipping the helpers", "path", c.OnceMarker)
			return nil
		}
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
	if c.OnceMarker == "" {
		return nil
	}
	if failed > 0 {
		cfg.Log.Warn("a helper failed: once marker not written, the helpers run again at the next start", "path", c.OnceMarker, "failed", failed)
		return nil
	}
	// A marker that cannot be written costs a re-run at the next start,
	// not this one: main keeps running.
	if err := writeAtomic(c.OnceMarker, time.Now().UTC().Format(time.RFC3339)+"\n"); err != nil {
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
