package mainproc

import (
	"context"
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
	// Child, when set, is the sidecar's registry entry; the sidecar's
	// goroutine is its only writer.
	Child *registry.Child
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
	// could not start); Stopped when it ended because it was asked to.
	GaveUp, Stopped bool
	// Err is the start error, when it could not start.
	Err error
}

// Sidecar is a long-running companion of main, kept up by its own
// goroutine: started in its own process group with stdin from /dev/null,
// its group killed when it exits (so nothing it left runs twice), and
// restarted by its policy, with exponential delays, until it gives up or
// is stopped.
type Sidecar struct {
	spec SidecarSpec
	r    *reaper.Reaper
	log  *slog.Logger

	mu       sync.Mutex
	proc     *reaper.Proc // the current run, nil between runs
	stopping bool
	state    State

	stop     chan struct{} // closed by Stop
	stopOnce sync.Once
	ready    chan struct{} // closed when a run first became ready
	readyOne sync.Once
	ended    chan struct{} // closed once the sidecar will not run again
	result   SidecarResult
}

// StartSidecar starts the sidecar's first run, and the goroutine that
// keeps it up, and returns at once.
func StartSidecar(r *reaper.Reaper, spec SidecarSpec, log *slog.Logger) *Sidecar {
	s := &Sidecar{
		spec:  spec,
		r:     r,
		log:   log.With("sidecar", spec.Name),
		stop:  make(chan struct{}),
		ready: make(chan struct{}),
		ended: make(chan struct{}),
	}
	go s.supervise()
	return s
}

// Name is the sidecar's name.
func (s *Sidecar) Name() string { return s.spec.Name }

// Ended is closed once the sidecar will not run again.
func (s *Sidecar) Ended() <-chan struct{} { return s.ended }

// Result is how the sidecar ended; valid once Ended is closed.
func (s *Sidecar) Result() SidecarResult {
	<-s.ended
	return s.result
}

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

// supervise runs the sidecar until it ends.
func (s *Sidecar) supervise() {
	b := s.spec.NewBackOff()
	b.Reset()
	restarts := 0
	s.setState(Starting)
	for {
		proc, check, began, err := s.launch()
		if proc == nil && err != nil {
			s.end(SidecarResult{Restarts: restarts, GaveUp: true, Err: err})
			return
		}
		if proc == nil {
			s.end(SidecarResult{Restarts: restarts, Stopped: true})
			return
		}
		exit := s.wait(proc, check)
		s.spec.Child.Exited(exit, time.Now(), registry.Exited)
		ran := time.Since(began)
		if s.isStopping() {
			s.log.Info("sidecar stopped", "pid", proc.PID(), "exit_code", exit.Code(), "status", exit.String())
			s.end(SidecarResult{Exit: exit, Restarts: restarts, Stopped: true})
			return
		}
		if ran > s.spec.MaxDelay {
			restarts = 0 // it ran long enough to count as stable
			b.Reset()
		}
		res := SidecarResult{Exit: exit, Restarts: restarts}
		switch {
		case s.spec.Restart == RestartNo:
			s.log.Info("sidecar exited; not restarted (restart=no)", "pid", proc.PID(), "exit_code", exit.Code(), "status", exit.String())
			s.end(res)
			return
		case s.spec.Restart == RestartOnFailure && exit.Success():
			s.log.Info("sidecar exited with 0; ended (restart=on-failure)", "pid", proc.PID(), "exit_code", 0)
			s.end(res)
			return
		case restarts >= s.spec.Retries:
			res.GaveUp = true
			s.log.Warn("sidecar exited; giving up", "pid", proc.PID(), "exit_code", exit.Code(), "status", exit.String(), "restart", restarts, "retries", s.spec.Retries)
			s.end(res)
			return
		}
		restarts++
		delay := b.NextBackOff()
		s.log.Warn("sidecar exited; restarting", "pid", proc.PID(), "exit_code", exit.Code(), "status", exit.String(), "restart", restarts, "delay", delay, "ran", ran.Round(time.Millisecond))
		s.setState(Restarting)
		s.spec.Child.Backoff(time.Now().Add(delay), restarts)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-s.stop:
			timer.Stop()
			s.end(SidecarResult{Exit: exit, Restarts: restarts, Stopped: true})
			return
		}
	}
}

// launch starts one run, with its ready check, unless the sidecar is being
// stopped (then it returns a nil proc and a nil error). The check and the
// start are made under s.mu, which Stop takes too: no run can start unseen
// by a stop.
func (s *Sidecar) launch() (*reaper.Proc, ReadyCheck, time.Time, error) {
	spec := s.spec.Spec
	if spec.Name == "" {
		spec.Name = "sidecar " + s.spec.Name
	}
	spec.Stdin, spec.Terminal, spec.KillGroup = nil, nil, true
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
	proc, err := s.r.Start(spec)
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
	s.proc = proc
	if check != nil {
		s.spec.Child.Started(proc.PID(), time.Now(), registry.Starting)
	} else {
		s.spec.Child.Started(proc.PID(), time.Now(), registry.Running)
	}
	s.log.Info("sidecar started", "pid", proc.PID(), "argv", spec.Argv)
	return proc, check, time.Now(), nil
}

// wait waits for one run to exit, checking meanwhile that it gets ready
// (a nil check: at once), and closes the check once the run has exited.
func (s *Sidecar) wait(proc *reaper.Proc, check ReadyCheck) reaper.Exit {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
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
		}
	}()
	exit := proc.Wait()
	cancel()
	wg.Wait()
	if check != nil {
		check.Close()
	}
	s.mu.Lock()
	s.proc = nil
	s.mu.Unlock()
	return exit
}

func (s *Sidecar) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

func (s *Sidecar) end(res SidecarResult) {
	s.result = res
	state := registry.Exited
	switch {
	case res.Stopped:
		state = registry.Stopped
	case res.GaveUp:
		state = registry.GaveUp
	}
	s.spec.Child.Set(state)
	s.setState(Ended)
	close(s.ended)
}

// Stop stops the sidecar for good: no restart follows, a pending restart
// is cancelled, and a running one is sent its stop signal, then SIGCONT,
// to its process group. It returns once the sidecar has ended; when it has
// not by deadline, its group is sent SIGKILL, and Stop gives up
// [reaper.KillWait] after the deadline. A sidecar that exits because it
// was asked to stop never counts as failed.
func (s *Sidecar) Stop(deadline time.Time) {
	s.mu.Lock()
	s.stopping = true
	proc := s.proc
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
	case <-s.ended:
		return
	case <-t.C:
	}
	if proc != nil {
		s.log.Warn("sidecar did not exit within grace; killing it", "pid", proc.PID())
		s.signal(proc, unix.SIGKILL)
	}
	select {
	case <-s.ended:
	case <-time.After(time.Until(deadline.Add(reaper.KillWait))):
		s.log.Error("sidecar still there after SIGKILL (stuck in the kernel, D state?); giving up on it")
	}
}

func (s *Sidecar) signal(proc *reaper.Proc, sig syscall.Signal) {
	if err := proc.SignalGroup(sig); err != nil {
		s.log.Warn("cannot signal sidecar", "pid", proc.PID(), "signal", SignalName(sig), "err", err)
	}
}
