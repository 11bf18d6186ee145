package mainproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/main/registry"
	"github.com/mainstay-dev/mainstay/reaper"
	"golang.org/x/sys/unix"
)

// Restart is a sidecar's restart policy, in Docker's words.
type Restart string

const (
	// RestartNo never restarts: the sidecar's first exit ends it.
	RestartNo Restart = "no"
	// RestartOnFailure restarts after a non-zero exit or a death by
	// signal; an exit 0 ends the sidecar.
	RestartOnFailure Restart = "on-failure"
	// RestartAlways restarts after every exit.
	RestartAlways Restart = "always"
)

// SidecarSpec says what a sidecar runs and how it is kept up.
type SidecarSpec struct {
	// Name is used in log lines and messages.
	Name string
	// Spec is what each run starts: its Argv, Env, Credential, Dir,
	// Stdout, Stderr and Prefix (each run has its own prefixer, so its
	// unfinished last line is ended when it exits, never glued to the
	// next run's first). Each run gets a copy with stdin from /dev/null
	// and no terminal (a sidecar never has it), KillGroup set, Name
	// "sidecar NAME" unless given, and its ReadyCheck's Env added.
	Spec reaper.Spec
	// StopSignal asks it to stop; it goes to its process group.
	StopSignal syscall.Signal
	Restart    Restart
	// Retries is how many restarts in a row are made before it gives up.
	Retries int
	// NewBackOff returns the delays before restarts. Its cap, MaxDelay,
	// also decides stability: a run that lasted longer than MaxDelay
	// resets both the delays and the count of restarts in a row.
	NewBackOff func() backoff.BackOff
	MaxDelay   time.Duration
	// Ready, when set, is called before each run starts (each restart
	// included) and returns the check that says when that run is ready
	// (its probes); an error fails the run's start, as a program that
	// cannot be started does. Without it, a run is ready once started.
	Ready func() (ReadyCheck, error)
	// OnState, when set, is called with each new State, from the
	// sidecar's own goroutines.
	OnState func(State)
	// OnEnd, when set, is called from the sidecar's goroutine each time
	// its life ends, with how, before [Sidecar.Ended] is closed; it must
	// not block.
	OnEnd func(SidecarResult)
	// Grace is how long a run stopped by an operator ([Sidecar.Restart],
	// [Sidecar.Down]) has after its stop signal before SIGKILL.
	Grace time.Duration
	// ReadyTimeout bounds, after Grace, how long an operator's restart or
	// start waits for the new run to be ready; 0: no bound.
	ReadyTimeout time.Duration
	// Child, when set, is the sidecar's registry entry; the sidecar's
	// goroutine is its only writer.
	Child *registry.Child
	// Daemon, when set, makes each run a start command that forks a
	// daemon away (pidfile=): the daemon, once adopted, is the run.
	Daemon *Daemon
}

// ReadyCheck says when one run of a sidecar is ready. Each run has its
// own, so nothing of an earlier run (a ready=notify socket and what was
// sent to it) counts for the next.
type ReadyCheck interface {
	// Env is added to the run's environment (ready=notify's
	// NOTIFY_SOCKET), and to no other process's.
	Env() []string
	// Wait returns nil once the run, whose PID is pid, is ready, and an
	// error when ctx is done first (the run exited, or is being stopped).
	Wait(ctx context.Context, pid int) error
	// Close releases what the check holds, once the run has exited or
	// could not start; a Wait that was called has returned by then.
	Close()
}

// State is where a sidecar is in its life.
type State string

const (
	// Starting: its first run has started and is not ready yet.
	Starting State = "starting"
	// Ready: running and ready (started, when it has no probes).
	Ready State = "ready"
	// Restarting: waiting to restart, or restarted and not ready again.
	Restarting State = "restarting"
	// Ended: it will not run again (see [Sidecar.Result]).
	Ended State = "ended"
)

// SidecarResult is how a sidecar ended.
type SidecarResult struct {
	// Exit is its last exit; zero for a program that could not start
	// (then Err says why).
	Exit reaper.Exit
	// Restarts counts the restarts in a row before the end.
	Restarts int
	// GaveUp is set when it failed and its retries were used up (or it
	// could not start); Stopped when it ended because it was asked to:
	// by the final [Sidecar.Stop], or by an operator (ByOperator).
	GaveUp, Stopped bool
	// ByOperator is set, with Stopped, when an operator's [Sidecar.Down]
	// stopped it: not a failure, and not the sidecar's own end.
	ByOperator bool
	// Err is the start error, when it could not start.
	Err error
}

// ErrFinalStop answers an operator's request once the final
// [Sidecar.Stop] began: the sidecar will not run again.
var ErrFinalStop = errors.New("stopping")

// ErrNotRunning answers [Sidecar.Signal] while no run is there.
var ErrNotRunning = errors.New("not running")

// Sidecar is a long-running companion of main, kept up by its own
// goroutine: started in its own process group with stdin from /dev/null,
// its group killed when it exits (so nothing it left runs twice), and
// restarted by its policy, with exponential delays, until it gives up or
// is stopped.
//
// That goroutine, the sidecar's one owner, also takes an operator's
// commands ([Sidecar.Restart], [Sidecar.Down], [Sidecar.Start]) from a
// channel, so nothing about the sidecar is changed from two goroutines.
// A sidecar that ended by itself (gave up, or exited under a policy that
// does not restart it) or was stopped by an operator is down, not gone:
// its goroutine waits for a command until the final [Sidecar.Stop].
type Sidecar struct {
	spec SidecarSpec
	r    *reaper.Reaper
	log  *slog.Logger

	mu       sync.Mutex
	cur      sidecarRun // the current run, nil between runs
	stopping bool
	state    State
	ended    chan struct{} // closed when the current life ends; a new one per Start
	result   SidecarResult // how the last life ended

	cmds     chan command  // the operator's commands, read by supervise
	stop     chan struct{} // closed by Stop
	stopOnce sync.Once
	ready    chan struct{} // closed when a run first became ready
	readyOne sync.Once
	done     chan struct{} // closed when supervise returned: the sidecar is gone

	// Owned by supervise: the replies owed to operators once the next
	// run is ready (restart, start) or the current one has exited (down).
	waiters, downWaiters []chan error
}

// op is an operator's command.
type op string

const (
	opRestart op = "restart"
	opDown    op = "stop"
	opStart   op = "start"
)

type command struct {
	op    op
	who   string     // who asked, for the log
	reply chan error // buffered: supervise never blocks on it
}

// StartSidecar starts the sidecar's first run, and the goroutine that
// keeps it up, and returns at once.
func StartSidecar(r *reaper.Reaper, spec SidecarSpec, log *slog.Logger) *Sidecar {
	s := &Sidecar{
		spec:  spec,
		r:     r,
		log:   log.With("sidecar", spec.Name),
		cmds:  make(chan command),
		stop:  make(chan struct{}),
		ready: make(chan struct{}),
		ended: make(chan struct{}),
		done:  make(chan struct{}),
	}
	go s.supervise()
	return s
}

// Name is the sidecar's name.
func (s *Sidecar) Name() string { return s.spec.Name }

// Ended is closed once the sidecar's current life ends: it gave up,
// exited under a policy that does not restart it, or was stopped (by an
// operator or for good). An operator's Start or Restart begins a new life
// with a new channel.
func (s *Sidecar) Ended() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// Result is how the sidecar's current life ended; it waits for Ended.
func (s *Sidecar) Result() SidecarResult {
	<-s.Ended()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.result
}

// Done is closed once the sidecar is gone for good: after the final
// [Sidecar.Stop].
func (s *Sidecar) Done() <-chan struct{} { return s.done }

// State is the sidecar's current state.
func (s *Sidecar) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// FirstReady is closed once a run of the sidecar has become ready.
func (s *Sidecar) FirstReady() <-chan struct{} { return s.ready }

func (s *Sidecar) setState(st State) {
	s.mu.Lock()
	changed := s.state != st
	s.state = st
	s.mu.Unlock()
	if changed && s.spec.OnState != nil {
		s.spec.OnState(st)
	}
}

// supervise runs the sidecar, and takes the operator's commands, until the
// final Stop.
func (s *Sidecar) supervise() {
	defer s.finish()
	b := s.spec.NewBackOff()
	b.Reset()
	restarts := 0
	// again is called when an operator starts the sidecar again: the
	// restarts in a row and the delays begin anew.
	again := func() {
		restarts = 0
		b.Reset()
		s.spec.Child.ResetRestarts()
	}
	s.setState(Starting)
	for {
		proc, check, began, err := s.launch()
		if proc == nil && err != nil {
			s.answer(err)
			s.end(SidecarResult{Restarts: restarts, GaveUp: true, Err: err})
			if !s.idle() {
				return
			}
			again()
			continue
		}
		if proc == nil {
			s.end(SidecarResult{Restarts: restarts, Stopped: true})
			return
		}
		exit, asked := s.run(proc, check)
		if s.spec.Daemon == nil && asked == nil && !s.isStopping() && time.Since(began) < time.Second {
			s.log.Warn("sidecar ended within a second of its start: a program that forks into the background (daemonizes) looks like that; run it in the foreground (its option for that, such as -F, -D FOREGROUND or --nodaemon), or give the sidecar pidfile=", "pid", proc.PID(), "exit_code", exit.Code())
		}
		s.spec.Child.Exited(exit, time.Now(), registry.Exited)
		ran := time.Since(began)
		if s.isStopping() {
			s.log.Info("sidecar stopped", "pid", proc.PID(), "exit_code", exit.Code(), "status", exit.String())
			s.end(SidecarResult{Exit: exit, Restarts: restarts, Stopped: true})
			return
		}
		if asked != nil && asked.op == opRestart {
			s.log.Info("sidecar exited; restarting it now: asked by an operator", "by", asked.who, "pid", proc.PID(), "exit_code", exit.Code(), "status", exit.String())
			s.setState(Restarting)
			again()
			continue
		}
		if asked != nil { // opDown
			s.log.Info("sidecar stopped by an operator; kept down until started again", "by", asked.who, "pid", proc.PID(), "exit_code", exit.Code(), "status", exit.String())
			s.end(SidecarResult{Exit: exit, Restarts: restarts, Stopped: true, ByOperator: true})
			if !s.idle() {
				return
			}
			again()
			continue
		}
		if ran > s.spec.MaxDelay {
			restarts = 0 // it ran long enough to count as stable
			b.Reset()
		}
		s.answer(fmt.Errorf("sidecar %s exited before it was ready (%s)", s.spec.Name, exit))
		res := SidecarResult{Exit: exit, Restarts: restarts}
		ended := true
		switch {
		case s.spec.Restart == RestartNo:
			s.log.Info("sidecar exited; not restarted (restart=no)", "pid", proc.PID(), "exit_code", exit.Code(), "status", exit.String())
		case s.spec.Restart == RestartOnFailure && exit.Success():
			s.log.Info("sidecar exited with 0; ended (restart=on-failure)", "pid", proc.PID(), "exit_code", 0)
		case restarts >= s.spec.Retries:
			res.GaveUp = true
			s.log.Warn("sidecar exited; giving up", "pid", proc.PID(), "exit_code", exit.Code(), "status", exit.String(), "restart", restarts, "retries", s.spec.Retries)
		default:
			ended = false
		}
		if ended {
			s.end(res)
			if !s.idle() {
				return
			}
			again()
			continue
		}
		restarts++
		delay := b.NextBackOff()
		s.log.Warn("sidecar exited; restarting", "pid", proc.PID(), "exit_code", exit.Code(), "status", exit.String(), "restart", restarts, "delay", delay, "ran", ran.Round(time.Millisecond))
		s.setState(Restarting)
		s.spec.Child.Backoff(time.Now().Add(delay), restarts)
		switch s.backoff(delay) {
		case backoffStop:
			s.end(SidecarResult{Exit: exit, Restarts: restarts, Stopped: true})
			return
		case backoffNow:
			again()
		case backoffDown:
			s.end(SidecarResult{Exit: exit, Restarts: restarts, Stopped: true, ByOperator: true})
			if !s.idle() {
				return
			}
			again()
		}
	}
}

type backoffEnd int

const (
	backoffElapsed backoffEnd = iota // the delay is over: restart
	backoffNow                       // an operator's restart or start: restart now
	backoffDown                      // an operator's stop: stay down
	backoffStop                      // the final Stop
)

// backoff waits for the delay before a restart, taking commands.
func (s *Sidecar) backoff(delay time.Duration) backoffEnd {
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return backoffElapsed
		case <-s.stop:
			return backoffStop
		case c := <-s.cmds:
			if s.refused(c) {
				continue
			}
			if c.op == opDown {
				s.log.Info("sidecar stopped by an operator while waiting to restart; kept down until started again", "by", c.who)
				c.reply <- nil
				return backoffDown
			}
			s.log.Info("sidecar restarting now, not after its delay: asked by an operator", "op", c.op, "by", c.who)
			s.waiters = append(s.waiters, c.reply)
			return backoffNow
		}
	}
}

// idle waits, the sidecar down, for an operator's start or restart (true:
// start it again) or the final Stop (false).
func (s *Sidecar) idle() bool {
	for {
		select {
		case <-s.stop:
			return false
		case c := <-s.cmds:
			if s.refused(c) {
				continue
			}
			if c.op == opDown {
				c.reply <- nil // down already
				continue
			}
			s.log.Info("sidecar starting again: asked by an operator", "op", c.op, "by", c.who)
			s.waiters = append(s.waiters, c.reply)
			s.mu.Lock()
			s.ended = make(chan struct{})
			s.mu.Unlock()
			s.setState(Restarting)
			return true
		}
	}
}

// refused answers c at once, and reports so, once the final Stop began.
func (s *Sidecar) refused(c command) bool {
	if !s.isStopping() {
		return false
	}
	c.reply <- ErrFinalStop
	return true
}

// answer replies to the operators waiting for a run to be ready.
func (s *Sidecar) answer(err error) {
	for _, w := range s.waiters {
		w <- err
	}
	s.waiters = nil
}

// finish answers every operator still waiting, and marks the sidecar gone.
func (s *Sidecar) finish() {
	s.answer(ErrFinalStop)
	for _, w := range s.downWaiters {
		w <- nil // it is down, for good
	}
	s.downWaiters = nil
	close(s.done)
}

// launch starts one run, with its ready check, unless the sidecar is being
// stopped (then it returns a nil proc and a nil error). The check and the
// start are made under s.mu, which Stop takes too: no run can start unseen
// by a stop.
func (s *Sidecar) launch() (sidecarRun, ReadyCheck, time.Time, error) {
	spec := s.spec.Spec
	if spec.Name == "" {
		spec.Name = "sidecar " + s.spec.Name
	}
	spec.Stdin, spec.Terminal, spec.KillGroup = nil, nil, true
	if s.spec.Daemon != nil {
		// The daemon may stay in the start command's group, and writes
		// to its output.
		spec.KillGroup, spec.OutputWait = false, reaper.KeepOutput
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil, nil, time.Time{}, nil
	}
	var check ReadyCheck
	if s.spec.Ready != nil {
		c, err := s.spec.Ready()
		if err != nil {
			s.log.Error("cannot start sidecar", "argv", spec.Argv, "err", err)
			return nil, nil, time.Time{}, err
		}
		check = c
		if env := c.Env(); len(env) > 0 {
			spec.Env = append(slices.Clip(spec.Env), env...) // a copy: s.spec's Env is every run's
		}
	}
	if d := s.spec.Daemon; d != nil {
		if err := d.Clear(); err != nil {
			if check != nil {
				check.Close()
			}
			err = fmt.Errorf("pidfile=%s: cannot remove it before the start: %w", d.Path, err)
			s.log.Error("cannot start sidecar", "argv", spec.Argv, "err", err)
			return nil, nil, time.Time{}, err
		}
	}
	p, err := s.r.Start(spec)
	if err != nil {
		if check != nil {
			check.Close()
		}
		if err == reaper.ErrClosed {
			return nil, nil, time.Time{}, nil
		}
		s.log.Error("cannot start sidecar", "argv", spec.Argv, "err", err)
		return nil, nil, time.Time{}, err
	}
	var proc sidecarRun = program{p}
	if d := s.spec.Daemon; d != nil {
		proc = startDaemon(s.r, p, *d, s.spec.Name, s.log)
	}
	s.cur = proc
	if check != nil || s.spec.Daemon != nil {
		s.spec.Child.Started(p.PID(), time.Now(), registry.Starting)
	} else {
		s.spec.Child.Started(p.PID(), time.Now(), registry.Running)
	}
	s.log.Info("sidecar started", "pid", p.PID(), "argv", spec.Argv)
	return proc, check, time.Now(), nil
}

// run waits for one run to exit, checking meanwhile that it gets ready (a
// nil check: at once), and taking the operator's commands: a restart or a
// stop stops the run (its stop signal, SIGKILL after Grace) and is
// returned as asked. It closes the check once the run has exited.
func (s *Sidecar) run(proc sidecarRun, check ReadyCheck) (exit reaper.Exit, asked *command) {
	ctx, cancel := context.WithCancel(context.Background())
	readyC := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-proc.Up():
		case <-ctx.Done():
			return
		}
		if s.spec.Daemon != nil {
			s.spec.Child.Started(proc.PID(), time.Now(), registry.Starting)
		}
		if check != nil {
			if err := check.Wait(ctx, proc.PID()); err != nil {
				return // it exited, or is being stopped, first
			}
		}
		if ctx.Err() == nil {
			s.log.Info("sidecar ready", "pid", proc.PID())
			s.setState(Ready)
			s.spec.Child.Set(registry.Running)
			s.readyOne.Do(func() { close(s.ready) })
			readyC <- struct{}{}
		}
	}()
	ready := false
	var kill <-chan time.Time
	stopRun := func(c *command) {
		cancel() // its readiness no longer matters
		s.log.Info("stopping sidecar: asked by an operator", "op", c.op, "by", c.who, "pid", proc.PID(), "stop_signal", SignalName(s.spec.StopSignal), "grace", s.spec.Grace)
		s.signal(proc, s.spec.StopSignal)
		s.signal(proc, unix.SIGCONT)
		kill = time.After(s.spec.Grace)
	}
	for {
		select {
		case <-readyC:
			ready = true
			if asked == nil {
				s.answer(nil)
			}
		case <-kill:
			kill = nil
			s.log.Warn("sidecar did not exit within grace; killing it", "pid", proc.PID(), "grace", s.spec.Grace)
			s.signal(proc, unix.SIGKILL)
		case <-proc.Done():
			exit = proc.Wait()
			cancel()
			wg.Wait()
			if check != nil {
				check.Close()
			}
			s.mu.Lock()
			s.cur = nil
			s.mu.Unlock()
			for _, w := range s.downWaiters {
				w <- nil
			}
			s.downWaiters = nil
			return exit, asked
		case c := <-s.cmds:
			if s.refused(c) {
				continue
			}
			switch {
			case c.op == opDown:
				s.downWaiters = append(s.downWaiters, c.reply)
				if asked == nil {
					stopRun(&c)
				} else if asked.op == opRestart {
					s.log.Info("sidecar's restart under way becomes a stop: asked by an operator", "by", c.who)
					s.answer(fmt.Errorf("sidecar %s stopped by an operator", s.spec.Name))
				}
				asked = &c
			case c.op == opStart && asked == nil && ready:
				c.reply <- nil // running and ready already
			case c.op == opStart && asked == nil:
				s.waiters = append(s.waiters, c.reply) // answered once ready
			default: // a restart; or a start while stopping for an operator
				s.waiters = append(s.waiters, c.reply)
				switch {
				case asked == nil:
					stopRun(&c)
					asked = &c
				case asked.op == opDown:
					s.log.Info("sidecar's stop under way becomes a restart: asked by an operator", "op", c.op, "by", c.who)
					c.op = opRestart
					asked = &c
				default:
					s.log.Info("restart joins the one under way", "op", c.op, "by", c.who)
				}
			}
		}
	}
}

func (s *Sidecar) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// end ends the sidecar's current life with res: its state, OnEnd, then
// its Ended channel.
func (s *Sidecar) end(res SidecarResult) {
	state := registry.Exited
	switch {
	case res.Stopped:
		state = registry.Stopped
	case res.GaveUp:
		state = registry.GaveUp
	}
	s.spec.Child.Set(state)
	s.mu.Lock()
	s.result = res
	ended := s.ended
	s.mu.Unlock()
	s.setState(Ended)
	// OnEnd first: whoever waits for Ended sees what OnEnd did.
	if s.spec.OnEnd != nil {
		s.spec.OnEnd(res)
	}
	close(ended)
}

// ask hands the operator's command c to the sidecar's goroutine.
func (s *Sidecar) ask(ctx context.Context, o op, who string) (chan error, error) {
	c := command{op: o, who: who, reply: make(chan error, 1)}
	select {
	case s.cmds <- c:
		return c.reply, nil
	case <-s.done:
		return nil, ErrFinalStop
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// awaitReady waits for the answer to a restart or start: its new run is
// ready, or it failed. The wait is bounded by the run's stop (Grace, and
// SIGKILL's wait) and the ReadyTimeout, when that is set.
func (s *Sidecar) awaitReady(ctx context.Context, reply chan error) error {
	var timeout <-chan time.Time
	if d := s.spec.ReadyTimeout; d > 0 {
		t := time.NewTimer(s.spec.Grace + reaper.KillWait + d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err := <-reply:
		return err
	case <-timeout:
		return fmt.Errorf("sidecar %s not ready after %s", s.spec.Name, s.spec.ReadyTimeout)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Restart is an operator's restart, asked by who (for the log): the
// current run, if any, is sent its stop signal and SIGCONT, and SIGKILL
// after Grace; once it exited, a new run starts at once, with the
// restarts in a row and the delays reset. A sidecar waiting to restart
// starts now; one that is down (gave up, ended, stopped by an operator)
// starts again. A restart asked while one is under way joins it. It
// returns once the new run is ready (nil), or with why not: it exited
// first, it was not ready within Grace and ReadyTimeout, the final Stop
// began ([ErrFinalStop]), ctx ended.
func (s *Sidecar) Restart(ctx context.Context, who string) error {
	reply, err := s.ask(ctx, opRestart, who)
	if err != nil {
		return err
	}
	return s.awaitReady(ctx, reply)
}

// Start is an operator's start, asked by who: a sidecar that is down
// (gave up, ended, stopped by an operator) starts again, its restarts in
// a row reset; one waiting to restart starts now. It returns as
// [Sidecar.Restart] does; for a running sidecar, once it is ready.
func (s *Sidecar) Start(ctx context.Context, who string) error {
	reply, err := s.ask(ctx, opStart, who)
	if err != nil {
		return err
	}
	return s.awaitReady(ctx, reply)
}

// Down is an operator's stop, asked by who: the current run is sent its
// stop signal and SIGCONT (SIGKILL after Grace), a pending restart is
// cancelled, and the sidecar stays down until [Sidecar.Start] or
// [Sidecar.Restart]. It is not a failure and not the sidecar's own end:
// its [SidecarResult] says Stopped and ByOperator. It returns once the
// run has exited (at once when down already).
func (s *Sidecar) Down(ctx context.Context, who string) error {
	reply, err := s.ask(ctx, opDown, who)
	if err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Signal sends sig to the process group of the current run;
// [ErrNotRunning] when there is none. A run already reaped is never
// signalled (its group ID may have been reused).
func (s *Sidecar) Signal(sig syscall.Signal) error {
	s.mu.Lock()
	proc := s.cur
	s.mu.Unlock()
	if proc == nil {
		return ErrNotRunning
	}
	return proc.Signal(sig)
}

// Stop stops the sidecar for good: no restart follows, a pending restart
// is cancelled, an operator's command is refused, and a running run is
// sent its stop signal, then SIGCONT, to its process group. It returns
// once the sidecar is gone; when it is not by deadline, its group is sent
// SIGKILL, and Stop gives up [reaper.KillWait] after the deadline. A
// sidecar that exits because it was asked to stop never counts as failed.
func (s *Sidecar) Stop(deadline time.Time) {
	s.mu.Lock()
	s.stopping = true
	proc := s.cur
	s.mu.Unlock()
	s.stopOnce.Do(func() { close(s.stop) })
	if proc != nil {
		s.log.Info("stopping sidecar", "pid", proc.PID(), "stop_signal", SignalName(s.spec.StopSignal), "grace", time.Until(deadline).Round(time.Millisecond))
		s.signal(proc, s.spec.StopSignal)
		s.signal(proc, unix.SIGCONT)
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-s.done:
		return
	case <-t.C:
	}
	if proc != nil {
		s.log.Warn("sidecar did not exit within grace; killing it", "pid", proc.PID())
		s.signal(proc, unix.SIGKILL)
	}
	select {
	case <-s.done:
	case <-time.After(time.Until(deadline.Add(reaper.KillWait))):
		s.log.Error("sidecar still there after SIGKILL (stuck in the kernel, D state?); giving up on it")
	}
}

func (s *Sidecar) signal(proc sidecarRun, sig syscall.Signal) {
	if err := proc.Stop(sig); err != nil {
		s.log.Warn("cannot signal sidecar", "pid", proc.PID(), "signal", SignalName(sig), "err", err)
	}
}
