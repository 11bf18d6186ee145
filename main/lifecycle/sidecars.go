package lifecycle

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/main/plan"
	"github.com/mainstay-dev/mainstay/main/registry"
	"github.com/mainstay-dev/mainstay/readiness"
)

// sidecars are the running --sidecar processes, in start order, and the
// policy around them: which ones are essential, what health says.
type sidecars struct {
	l *life
	// ended is called once for an essential sidecar that ended for good
	// without being asked to: the stop of everything begins.
	ended func(*sidecarError)

	mu       sync.Mutex
	running  []*runningSidecar
	stopping bool
	health   func() // called when a sidecar's state changes
}

type runningSidecar struct {
	plan  *plan.Sidecar
	sc    *mainproc.Sidecar
	child *registry.Child
}

// sidecarError is an essential sidecar that ended: its exit decides
// mainstay's exit code.
type sidecarError struct {
	name   string
	result mainproc.SidecarResult
}

func (e *sidecarError) Error() string {
	if e.result.Err != nil {
		return fmt.Sprintf("sidecar %s: %v", e.name, e.result.Err)
	}
	if e.result.GaveUp {
		return fmt.Sprintf("sidecar %s gave up after %d restarts (%s)", e.name, e.result.Restarts, e.result.Exit)
	}
	return fmt.Sprintf("sidecar %s ended (%s)", e.name, e.result.Exit)
}

// any reports whether some sidecar has start=after (after set) or
// start=before.
func (s *sidecars) any(after bool) bool {
	for _, sc := range s.l.plan.Sidecars {
		if sc.After == after {
			return true
		}
	}
	return false
}

// start starts the sidecars with start=after when after is set, else
// those with start=before, in order. A start=before sidecar must be ready
// before the next one starts: start returns a *sidecarNotReady when one is
// not ready within --ready-timeout, its *sidecarError when it ended first,
// and the cause when ctx is done first.
func (s *sidecars) start(ctx context.Context, after bool) error {
	for _, sc := range s.l.plan.Sidecars {
		if sc.After != after {
			continue
		}
		rs := s.launch(sc)
		if after {
			continue
		}
		if err := s.waitReady(ctx, rs); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits until a run of rs is ready: for its ready-timeout= (or
// --ready-timeout) from its start, across its restarts, a limit its ready=notify's
// EXTEND_TIMEOUT_USEC may move later. It returns a *sidecarNotReady when
// the time is up, its *sidecarError when it ended first, and the cause
// when ctx is done first.
func (s *sidecars) waitReady(ctx context.Context, rs *runningSidecar) error {
	sc := rs.plan
	dl := readiness.NewDeadline(sc.ReadyTimeout(s.l.plan.ReadyTimeout))
	defer dl.Stop()
	extended := readiness.NotifyOf(sc.Ready).Extensions()
	for {
		select {
		case <-rs.sc.FirstReady():
			return nil
		case <-rs.sc.Ended():
			return &sidecarError{name: sc.Name, result: rs.sc.Result()}
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-dl.C():
			return &sidecarNotReady{name: sc.Name, after: dl.Timeout()}
		case until := <-extended:
			dl.Extend(until, s.l.log.With("sidecar", sc.Name))
		}
	}
}

// sidecarNotReady is a start=before sidecar not ready in time.
type sidecarNotReady struct {
	name  string
	after time.Duration
}

func (e *sidecarNotReady) Error() string {
	return fmt.Sprintf("sidecar %s not ready after %s", e.name, e.after)
}

func (s *sidecars) launch(sc *plan.Sidecar) *runningSidecar {
	l := s.l
	log := l.log.With("sidecar", sc.Name)
	child := l.registry.Add(sc.Name, registry.Sidecar)
	base := l.command(&sc.Command)
	base.Stdout, base.Stderr = os.Stdout, os.Stderr
	base.Prefix = l.plan.Tasks.PrefixOf(sc.Name)
	spec := mainproc.SidecarSpec{
		Name:       sc.Name,
		Spec:       base,
		StopSignal: sc.StopSignal,
		Restart:    sc.Restart,
		Retries:    sc.Retries,
		NewBackOff: l.restartBackOff,
		MaxDelay:   l.plan.Restart.MaxDelay,
		OnState:    func(st mainproc.State) { s.changed() },
		Child:      child,
	}
	if len(sc.Ready) > 0 {
		cfg := l.probeConfig(0, log, sc.User)
		uid := l.user(sc.User).UID()
		spec.Ready = func() (mainproc.ReadyCheck, error) {
			probes, notify := readiness.ForRun(sc.Ready)
			if notify != nil {
				if err := notify.Listen(); err != nil {
					return nil, err
				}
			}
			return &runReady{probes: probes, notify: notify, uid: uid, cfg: cfg}, nil
		}
	}
	rs := &runningSidecar{plan: sc, child: child}
	// Each time it ends by itself (not stopped, by the final stop or by
	// an operator): an essential one ends everything.
	spec.OnEnd = func(res mainproc.SidecarResult) {
		if res.Stopped || s.isStopping() {
			return
		}
		if sc.Essential {
			s.ended(&sidecarError{name: sc.Name, result: res})
			return
		}
		l.log.Warn("non-essential sidecar ended; left down", "sidecar", sc.Name, "exit_code", sidecarCode(res), "restart", res.Restarts, "gave_up", res.GaveUp)
	}
	spec.Grace, spec.ReadyTimeout = l.plan.Grace, sc.ReadyTimeout(l.plan.ReadyTimeout)
	if sc.PIDFile != "" {
		spec.Daemon = pidfileDaemon(sc.PIDFile, l.user(sc.User).UID(), spec.ReadyTimeout)
	}
	started := mainproc.StartSidecar(l.reaper, spec, l.log)
	s.mu.Lock()
	rs.sc = started
	s.running = append(s.running, rs)
	s.mu.Unlock()
	return rs
}

// runReady is the ready= check of one run of a sidecar: its probes and,
// with ready=notify, the run's own notify socket, whose address only this
// run gets; it is closed once the run has exited. The sidecar's STOPPING=1
// is only logged: health's "stopping" means the container is going away,
// and the sidecar's exit that follows is handled as any exit (a restart,
// health "restarting", or the end of everything).
type runReady struct {
	probes []readiness.Probe
	notify *readiness.Notify // nil without ready=notify
	uid    int               // the sidecar's user: its messages are believed
	cfg    readiness.Config  // no timeout: sidecars.waitReady bounds the wait
}

func (c *runReady) Env() []string {
	if c.notify == nil {
		return nil
	}
	return []string{c.notify.Env()}
}

func (c *runReady) Wait(ctx context.Context, pid int) error {
	if c.notify != nil {
		c.notify.Start(pid, c.uid, c.cfg.Log)
	}
	return readiness.Wait(ctx, c.probes, c.cfg)
}

func (c *runReady) Close() { c.notify.Close() }

func (s *sidecars) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

func (s *sidecars) changed() {
	s.mu.Lock()
	h := s.health
	s.mu.Unlock()
	if h != nil {
		h()
	}
}

// restarting reports whether an essential sidecar is not running and
// ready: health is then "restarting", not "ready".
func (s *sidecars) restarting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range s.running {
		if rs.plan.Essential && rs.sc.State() != mainproc.Ready {
			return true
		}
	}
	return false
}

// stop stops every sidecar, in the reverse of their start order, each with
// its own stop signal, all within the stop's one deadline.
func (s *sidecars) stop(deadline time.Time) {
	s.mu.Lock()
	s.stopping = true
	list := s.running
	s.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].sc.Stop(deadline)
	}
}
