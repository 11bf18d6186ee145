package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mainstay-dev/mainstay/main/cron"
	"github.com/mainstay-dev/mainstay/main/plan"
	"github.com/mainstay-dev/mainstay/main/registry"
	"github.com/mainstay-dev/mainstay/reaper"
	"golang.org/x/sys/unix"
)

// cronKillAfter is how long a run that outlived its timeout= has between
// SIGTERM to its process group and SIGKILL, or --grace when that is
// shorter: a job that tidies up on SIGTERM gets the time to, and a stuck
// one does not run on.
const cronKillAfter = 5 * time.Second

// crons runs the scheduled entries (--cron, --crontab). The scheduler
// (main/cron) says when an entry falls due; crons starts the run, a child
// of its own through the reaper, applies overlap= and timeout=, logs each
// run and keeps the entry's registry record (kind cron), of which it is
// the only writer. No run starts once the stop has begun; [life.stop]
// calls halt first, then stop and wait after main, before the sidecars,
// within the one --grace.
type crons struct {
	l      *life
	sched  *cron.Scheduler // nil without entries: no goroutine, no timer
	list   []*cronEntry
	byName map[string]*cronEntry

	mu       sync.Mutex
	stopping bool
	runs     sync.WaitGroup // a goroutine per run, until its exit is logged
}

// cronEntry is one entry and its runs.
type cronEntry struct {
	plan  *plan.Cron
	child *registry.Child
	spec  reaper.Spec // what each run starts

	// Guarded by crons.mu.
	running []*cronRun // in start order
	// skipped counts the slots skipped (overlap=skip) since the entry
	// last had no run going: the first is logged, the count goes with
	// the running run's end.
	skipped int
}

// cronRun is one run of an entry.
type cronRun struct {
	proc     *reaper.Proc
	start    time.Time
	timedOut bool // guarded by crons.mu
}

// newCrons describes each entry's runs and enters it in the registry,
// pending; its scheduler is created, not started: nothing falls due
// before [crons.start].
func newCrons(l *life) (*crons, error) {
	c := &crons{l: l, byName: map[string]*cronEntry{}}
	if len(l.plan.Crons) == 0 {
		return c, nil
	}
	entries := make([]cron.Entry, len(l.plan.Crons))
	for i, pc := range l.plan.Crons {
		spec := l.command(&pc.Command)
		spec.Name = "cron " + pc.Name
		spec.Stdout, spec.Stderr = os.Stdout, os.Stderr
		spec.Prefix = l.plan.Tasks.PrefixOf(pc.Name)
		spec.KillGroup = true // stdin stays nil: /dev/null
		e := &cronEntry{plan: pc, child: l.registry.Add(pc.Name, registry.Cron), spec: spec}
		c.list = append(c.list, e)
		c.byName[pc.Name] = e
		entries[i] = cron.Entry{Name: pc.Name, Schedule: pc.When}
	}
	s, err := cron.New(cron.Config{Due: c.due, Skipped: c.skipped, SteppedBack: c.steppedBack}, entries)
	if err != nil {
		return nil, err
	}
	c.sched = s
	return c, nil
}

// start makes the entries fall due from now on: once main is ready and
// the helpers are done.
func (c *crons) start() {
	if c.sched == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return
	}
	c.sched.Start()
	for _, e := range c.list {
		next := c.sched.NextDue(e.plan.Name)
		e.child.Due(next)
		e.child.Set(registry.Scheduled)
		args := []any{"cron", e.plan.Name, "schedule", e.plan.Schedule}
		if !next.IsZero() {
			args = append(args, "next", next)
		}
		c.l.log.Info("cron entry scheduled", args...)
	}
}

// stopBegun reports whether no run may start: the stop has begun, or main
// was asked to stop (a stop signal forwarded to it) or has exited, which
// the stop follows. Called with mu held.
func (c *crons) stopBegun() bool {
	if c.stopping {
		return true
	}
	select {
	case <-c.l.main.Stopping():
		return true
	case <-c.l.main.Done():
		return true
	default:
		return false
	}
}

// due is the scheduler's call for an entry's slot at: the run starts,
// unless the stop has begun or, with overlap=skip, the previous run still
// runs (the first such slot is logged at WARN, the next ones at DEBUG,
// until the entry has no run going).
func (c *crons) due(name string, at time.Time) {
	e := c.byName[name]
	c.mu.Lock()
	defer c.mu.Unlock()
	e.child.Due(c.sched.NextDue(name))
	log := c.l.log
	if c.stopBegun() {
		log.Debug("cron run not started: the stop has begun", "cron", name, "due", at)
		return
	}
	if len(e.running) > 0 && e.plan.Overlap == plan.OverlapSkip {
		e.skipped++
		prev := e.running[len(e.running)-1]
		level := slog.LevelDebug
		if e.skipped == 1 {
			level = slog.LevelWarn
		}
		log.Log(context.Background(), level, "cron run skipped: the previous run is still running (overlap=skip)",
			"cron", name, "due", at, "pid", prev.proc.PID(), "running_for", time.Since(prev.start).Round(time.Millisecond))
		return
	}
	c.launch(e)
}

// launch starts a run of e. Called with mu held.
func (c *crons) launch(e *cronEntry) {
	log := c.l.log
	now := time.Now()
	proc, err := c.l.reaper.Start(e.spec)
	if errors.Is(err, reaper.ErrClosed) {
		return
	}
	if err != nil {
		// As a shell reports a command it cannot run: 127 or 126.
		code := reaper.StartFailureCode(err)
		log.Warn("cannot start cron run", "cron", e.plan.Name, "exit_code", code, "err", err)
		if len(e.running) == 0 {
			e.child.Exited(reaper.ExitedWith(code), now, registry.Scheduled)
		}
		return
	}
	run := &cronRun{proc: proc, start: now}
	e.running = append(e.running, run)
	e.child.Started(proc.PID(), now, registry.Running)
	log.Info("cron run started", "cron", e.plan.Name, "pid", proc.PID())
	c.runs.Add(1)
	go c.watch(e, run)
}

// watch waits for one run to exit, enforcing its timeout=, and logs and
// records how it ended.
func (c *crons) watch(e *cronEntry, run *cronRun) {
	defer c.runs.Done()
	if t := e.plan.Timeout; t > 0 {
		timer := time.NewTimer(t)
		select {
		case <-run.proc.Done():
		case <-timer.C:
			c.timeout(e, run)
		}
		timer.Stop()
	}
	exit := run.proc.Wait()
	now := time.Now()

	c.mu.Lock()
	for i, r := range e.running {
		if r == run {
			e.running = append(e.running[:i:i], e.running[i+1:]...)
			break
		}
	}
	skipped := 0
	switch {
	case len(e.running) > 0:
		e.child.Exited(exit, now, registry.Running)
		last := e.running[len(e.running)-1]
		e.child.Started(last.proc.PID(), last.start, registry.Running)
	case c.stopping:
		e.child.Exited(exit, now, registry.Stopped)
	default:
		e.child.Exited(exit, now, registry.Scheduled)
	}
	if len(e.running) == 0 {
		skipped, e.skipped = e.skipped, 0
	}
	stopping, timedOut := c.stopping, run.timedOut
	c.mu.Unlock()

	args := []any{"cron", e.plan.Name, "pid", run.proc.PID(), "exit_code", exit.Code(), "status", exit.String(),
		"elapsed", now.Sub(run.start).Round(time.Millisecond)}
	if skipped > 0 {
		args = append(args, "skipped", skipped)
	}
	log := c.l.log
	switch {
	case timedOut:
		log.Warn("cron run timed out", append(args, "timeout", e.plan.Timeout)...)
	case stopping:
		log.Info("cron run stopped", args...)
	case exit.Success():
		log.Info("cron run succeeded", args...)
	default:
		log.Warn("cron run failed", args...)
	}
}

// timeout stops a run that outlived its timeout=: SIGTERM (and SIGCONT)
// to its process group, then SIGKILL cronKillAfter later (--grace when
// shorter) if it is still there. Once the stop has begun, the stop's
// signals and deadline are the run's, and a timeout changes nothing.
func (c *crons) timeout(e *cronEntry, run *cronRun) {
	after := min(cronKillAfter, c.l.plan.Grace)
	c.mu.Lock()
	stopping := c.stopping
	run.timedOut = !stopping
	c.mu.Unlock()
	if stopping {
		return
	}
	c.l.log.Warn("cron run timed out; stopping it", "cron", e.plan.Name, "pid", run.proc.PID(), "timeout", e.plan.Timeout,
		"stop_signal", "SIGTERM", "kill_after", after)
	c.signal(e, run, unix.SIGTERM)
	c.signal(e, run, unix.SIGCONT)
	kill := time.NewTimer(after)
	defer kill.Stop()
	select {
	case <-run.proc.Done():
		return
	case <-kill.C:
	}
	c.l.log.Warn("cron run did not stop after its timeout; killing it", "cron", e.plan.Name, "pid", run.proc.PID())
	c.signal(e, run, unix.SIGKILL)
}

func (c *crons) signal(e *cronEntry, run *cronRun, sig syscall.Signal) {
	if err := run.proc.SignalGroup(sig); err != nil {
		c.l.log.Warn("cannot signal cron run", "cron", e.plan.Name, "pid", run.proc.PID(), "signal", unix.SignalName(sig), "err", err)
	}
}

// skipped is the scheduler's report of slots missed without a wake-up (a
// forward step of the wall clock, a suspend): none of them runs.
func (c *crons) skipped(name string, count int, first, last time.Time) {
	c.byName[name].child.Due(c.sched.NextDue(name))
	c.l.log.Warn("cron runs missed: no wake-up at their time (wall clock set forward, machine suspended, container paused); not run late",
		"cron", name, "count", count, "first", first, "last", last)
}

// steppedBack is the scheduler's report of the wall clock set back.
func (c *crons) steppedBack(by time.Duration, restarted bool) {
	for _, e := range c.list {
		e.child.Due(c.sched.NextDue(e.plan.Name))
	}
	by = by.Round(time.Second)
	if restarted {
		c.l.log.Warn("wall clock set back by more than 3h: the schedules start over from the new time", "by", by)
		return
	}
	c.l.log.Warn("wall clock set back: the schedules wait for it, no run falls due twice", "by", by)
}

// halt begins the stop of the scheduled entries, first thing in
// [life.stop]: the scheduler is stopped, and no run starts from now on.
func (c *crons) halt() {
	if c.sched == nil {
		return
	}
	c.mu.Lock()
	already := c.stopping
	c.stopping = true
	c.mu.Unlock()
	if already {
		return
	}
	// Not under mu: the scheduler's goroutine may wait for it in due,
	// and Stop waits for that goroutine.
	c.sched.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.list {
		e.child.Due(time.Time{})
		if len(e.running) == 0 {
			e.child.Set(registry.Stopped)
		}
	}
}

// stop sends each running run SIGTERM, then SIGCONT, to its process
// group, once main has exited and before the sidecars are stopped (the
// reverse of the start order: the runs may use a sidecar). It does not
// wait; [crons.wait] does.
func (c *crons) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.list {
		for _, run := range e.running {
			c.l.log.Info("stopping cron run", "cron", e.plan.Name, "pid", run.proc.PID(), "stop_signal", "SIGTERM")
			c.signal(e, run, unix.SIGTERM)
			c.signal(e, run, unix.SIGCONT)
		}
	}
}

// wait waits until every run has ended and been logged, by deadline (the
// stop's): then the process groups of those still running get SIGKILL,
// and wait gives up [reaper.KillWait] later.
func (c *crons) wait(deadline time.Time) {
	if c.sched == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		c.runs.Wait()
		close(done)
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	c.mu.Lock()
	for _, e := range c.list {
		for _, run := range e.running {
			c.l.log.Warn("cron run did not exit within grace; killing it", "cron", e.plan.Name, "pid", run.proc.PID())
			c.signal(e, run, unix.SIGKILL)
		}
	}
	c.mu.Unlock()
	select {
	case <-done:
	case <-time.After(time.Until(deadline.Add(reaper.KillWait))):
		c.l.log.Error("cron run still there after SIGKILL (stuck in the kernel, D state?); giving up on it")
	}
}
