package mainproc

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mainstay-dev/mainstay/reaper"
	"golang.org/x/sys/unix"
)

// Options say how main is signalled.
type Options struct {
	// StopSignal asks main to stop; it replaces SIGTERM when forwarding.
	StopSignal syscall.Signal
	// Grace is the budget of the whole stop: main is sent SIGKILL when it
	// has not exited Grace after it was first asked to stop, and what is
	// left of it is the leftovers' (see [Process.StopDeadline]).
	Grace time.Duration
	// Group sends every signal to main's process group instead of main.
	Group bool
	// Stdout and Stderr, when set, observe a copy of main's output (for
	// log probes). Main then writes to pipes that the reaper copies to
	// mainstay's own stdout and stderr unchanged, and to the observer,
	// until [Process.FlushOutput]; otherwise main inherits them.
	Stdout, Stderr io.Writer
}

// Process is the running main process.
type Process struct {
	proc *reaper.Proc
	opts Options
	log  *slog.Logger
	sigs chan os.Signal
	asks chan signalAsk // an operator's signals, taken by loop

	started    chan struct{} // closed by Foreground: start-up is over
	startOnce  sync.Once
	stop       chan struct{} // closed by Stop
	stopOnce   sync.Once
	stopReason string        // set before stop is closed
	aborted    chan struct{} // closed when a signal aborted start-up
	abortSig   syscall.Signal
	stopping   chan struct{} // closed when main is first asked to stop
	stuck      chan struct{} // closed when main outlived its SIGKILL by reaper.KillWait
	ended      chan struct{} // closed when main has exited or is stuck: loop has returned

	mu       sync.Mutex
	deadline time.Time // end of the stop's budget, once asked to stop
}

// Start starts spec (its Argv, Env, Credential, Dir) as main through r,
// with mainstay's stdin, stdout and stderr, and starts the goroutine that
// signals it, which from then on owns the subscription sigs. The error is
// the start error of Argv[0]; see [reaper.StartFailureCode] for its exit
// code.
func Start(r *reaper.Reaper, sigs *Signals, spec reaper.Spec, opts Options, log *slog.Logger) (*Process, error) {
	p := &Process{
		opts:     opts,
		log:      log,
		sigs:     sigs.c,
		asks:     make(chan signalAsk),
		started:  make(chan struct{}),
		stop:     make(chan struct{}),
		aborted:  make(chan struct{}),
		stopping: make(chan struct{}),
		stuck:    make(chan struct{}),
		ended:    make(chan struct{}),
	}
	spec.Name = "main"
	spec.Stdin, spec.Stdout, spec.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The copy outlives main, carrying what its children write, until
	// FlushOutput after the final sweep.
	spec.OutputWait = reaper.KeepOutput
	// Copied while main has the terminal: see ForegroundSafe.
	if opts.Stdout != nil {
		spec.Stdout = tee{ForegroundSafe(os.Stdout), opts.Stdout}
	}
	if opts.Stderr != nil {
		spec.Stderr = tee{ForegroundSafe(os.Stderr), opts.Stderr}
	}
	proc, err := r.Start(spec)
	if err != nil {
		return nil, err
	}
	p.proc = proc
	go p.loop()
	return p, nil
}

// PID is main's process ID.
func (p *Process) PID() int { return p.proc.PID() }

// Done is closed once main has exited, or has been given up on because it
// outlived its SIGKILL (see [Process.Wait]).
func (p *Process) Done() <-chan struct{} { return p.ended }

// Wait blocks until main has exited and returns how. When main does not
// die within [reaper.KillWait] of its SIGKILL (stuck in the kernel), Wait
// gives up on it and reports it as killed by SIGKILL.
func (p *Process) Wait() reaper.Exit {
	select {
	case <-p.proc.Done():
		return p.proc.Wait()
	case <-p.stuck:
		return reaper.KilledBy(unix.SIGKILL)
	}
}

// FlushOutput waits, up to d, until main's output (when observed) has all
// been copied: until every process that inherited main's stdout and stderr
// is gone. Then it closes the copies. Call it after the final sweep.
func (p *Process) FlushOutput(d time.Duration) { p.proc.CloseOutput(d) }

// Aborted is closed when SIGTERM, SIGINT or SIGQUIT arrived during start-up.
// Main has then been asked to stop.
func (p *Process) Aborted() <-chan struct{} { return p.aborted }

// AbortSignal is the signal that aborted start-up; valid once Aborted is closed.
func (p *Process) AbortSignal() syscall.Signal {
	<-p.aborted
	return p.abortSig
}

// Stopping is closed the first time main is asked to stop: by [Process.Stop],
// or by a forwarded SIGTERM, SIGINT or SIGQUIT.
func (p *Process) Stopping() <-chan struct{} { return p.stopping }

// Stop asks main to stop, for reason (logged): it sends the stop signal,
// then SIGKILL when main has not exited within the grace period. Only the
// first call counts. Stop does not block; use Wait.
func (p *Process) Stop(reason string) {
	p.stopOnce.Do(func() {
		p.stopReason = reason
		close(p.stop)
	})
}

// loop is the only code that signals main. It returns once main has
// exited or has been given up on (closing ended), but the subscription stays: without a handler, a SIGTERM during
// the final sweep would make a Go PID 1 exit 2, and anywhere else kill
// mainstay before its leftovers are stopped. Later signals fill the
// channel's buffer and are then dropped.
func (p *Process) loop() {
	defer close(p.ended)
	var kill, giveUp <-chan time.Time
	// askStop starts the stop, once: the budget runs from here. The line
	// is logged before the signal goes out, so it always precedes what
	// main does about it.
	askStop := func(why string, sig syscall.Signal) {
		if kill != nil {
			return
		}
		deadline := time.Now().Add(p.opts.Grace)
		p.mu.Lock()
		p.deadline = deadline
		p.mu.Unlock()
		p.log.Info("stopping main", "pid", p.PID(), "reason", why, "stop_signal", SignalName(sig), "grace", p.opts.Grace)
		kill = time.After(p.opts.Grace)
		close(p.stopping)
	}
	stop := p.stop
	for {
		select {
		case <-p.proc.Done():
			return
		case <-stop:
			stop = nil
			if kill == nil { // not asked already: a second stop signal can mean "quit now"
				askStop(p.stopReason, p.opts.StopSignal)
				p.sendStop(p.opts.StopSignal)
			}
		case <-kill:
			kill = make(chan time.Time) // never again
			p.log.Warn("main did not exit within grace; killing it", "pid", p.PID(), "grace", p.opts.Grace)
			p.send(unix.SIGKILL)
			giveUp = time.After(reaper.KillWait)
		case <-giveUp:
			p.log.Error("main still there after SIGKILL (stuck in the kernel, D state?); giving up on it", "pid", p.PID(), "waited", reaper.KillWait)
			close(p.stuck)
			return
		case s := <-p.sigs:
			p.take(s.(syscall.Signal), askStop)
		case a := <-p.asks:
			a.reply <- p.take(a.sig, askStop)
		}
	}
}

// take handles a signal mainstay received, or an operator's: during
// start-up SIGTERM, SIGINT and SIGQUIT abort it; afterwards they start
// the stop (SIGTERM replaced by the stop signal); any other signal is
// sent on. It returns the error of sending it on.
func (p *Process) take(got syscall.Signal, askStop func(string, syscall.Signal)) error {
	if p.starting() && asksToStop(got) {
		if p.abortSig == 0 {
			p.log.Info("signal received during start-up: aborting", "signal", SignalName(got))
			p.abortSig = got
			close(p.aborted)
		}
		askStop("signal "+SignalName(got), p.opts.StopSignal)
		p.sendStop(p.opts.StopSignal)
		return nil
	}
	sig := got
	if sig == unix.SIGTERM {
		sig = p.opts.StopSignal
	}
	if asksToStop(got) {
		askStop("signal "+SignalName(got), sig)
		p.sendStop(sig)
		return nil
	}
	p.log.Debug("forwarding signal", "signal", SignalName(sig), "pid", p.PID(), "group", p.opts.Group)
	return p.send(sig)
}

// signalAsk is an operator's signal for main, and where its answer goes.
type signalAsk struct {
	sig   syscall.Signal
	reply chan error
}

// ErrExited answers [Process.Signal] once main has exited.
var ErrExited = errors.New("main has exited")

// Signal is an operator's signal for main: the signal loop takes it as
// it takes one mainstay received (to main's group with --signal-group;
// SIGTERM, SIGINT and SIGQUIT stop main, SIGTERM as the stop signal). A
// main that has exited is never signalled: [ErrExited].
func (p *Process) Signal(sig syscall.Signal) error {
	a := signalAsk{sig: sig, reply: make(chan error, 1)}
	select {
	case <-p.proc.Done():
		return ErrExited
	default:
	}
	select {
	case p.asks <- a:
		return <-a.reply
	case <-p.ended:
		return ErrExited
	}
}

// sendStop sends main a signal that asks it to stop, then SIGCONT to its
// process group, as a shell's kill does for a stopped job: a main stopped
// by SIGSTOP, Ctrl-Z or SIGTTIN would otherwise keep the signal pending
// and never act on it. SIGCONT to a running process has no effect.
func (p *Process) sendStop(sig syscall.Signal) {
	p.send(sig)
	if err := p.proc.SignalGroup(unix.SIGCONT); err != nil {
		p.log.Warn("cannot continue main", "pid", p.PID(), "err", err)
	}
}

// StopDeadline is when the stop's budget (--grace) ends: Grace after main
// was first asked to stop. It is the zero time when main was never asked.
func (p *Process) StopDeadline() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deadline
}

func (p *Process) starting() bool {
	select {
	case <-p.started:
		return false
	default:
		return true
	}
}

func (p *Process) send(sig syscall.Signal) error {
	var err error
	if p.opts.Group {
		err = p.proc.SignalGroup(sig)
	} else {
		err = p.proc.Signal(sig)
	}
	if err != nil {
		p.log.Warn("cannot signal main", "pid", p.PID(), "signal", SignalName(sig), "err", err)
	}
	return err
}

// Foreground ends start-up: from now on every signal is forwarded to main.
// With a terminal (tty non-nil, from [OpenTerminal]) it makes main's process
// group the terminal's foreground group, and it continues main if a
// job-control signal stopped it, as the shell's "fg %1" does.
func (p *Process) Foreground(tty *os.File) {
	p.startOnce.Do(func() { close(p.started) })
	if tty != nil {
		if err := setForeground(tty, p.PID()); err != nil {
			p.log.Warn("cannot give main the terminal", "pid", p.PID(), "err", err)
		}
	}
	if p.proc.Stopped() {
		p.log.Debug("continuing stopped main", "pid", p.PID())
		_ = p.proc.SignalGroup(unix.SIGCONT)
	}
}
