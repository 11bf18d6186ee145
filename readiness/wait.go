package readiness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/reaper"
)

// Config says how to wait.
type Config struct {
	// Timeout bounds the whole wait; 0 waits until ctx is done.
	Timeout time.Duration
	// Interval is the first delay between two attempts of a probe, and
	// MaxInterval its cap. Delays grow by Multiplier with RandomizationFactor
	// jitter in between. A zero MaxInterval means each probe's
	// [DefaultMaxInterval], and never less than Interval.
	Interval, MaxInterval time.Duration
	// AttemptTimeout bounds one attempt of one probe.
	AttemptTimeout time.Duration
	// Runner starts exec probes.
	Runner reaper.Runner
	Log    *slog.Logger
	// NewBackOff, when set, replaces the exponential backoff built from
	// Interval and MaxInterval; tests use it to fake time.
	NewBackOff func() backoff.BackOff
}

// Multiplier and RandomizationFactor shape the delays between attempts:
// each delay is the previous one times Multiplier, randomised by
// ±RandomizationFactor, and capped at Config.MaxInterval.
const (
	Multiplier          = 2
	RandomizationFactor = 0.2
)

// The default caps of the delay between two attempts (Config.MaxInterval
// 0). An attempt of tcp:, unix: or http(s):// costs a connection to a
// local socket, microseconds of work, so those kinds are polled often
// enough for a median lag of about half of CheapMaxInterval; exec: forks
// a process each time, and file: and log: are woken at their event, so
// they keep the longer cap.
const (
	CheapMaxInterval = 15 * time.Millisecond
	MaxInterval      = 100 * time.Millisecond
)

// DefaultMaxInterval is the cap of the delay between two attempts of p
// when Config.MaxInterval is 0.
func DefaultMaxInterval(p Probe) time.Duration {
	switch p.(type) {
	case TCP, Unix, HTTP:
		return CheapMaxInterval
	}
	return MaxInterval
}

// NotReadyError reports the probes that had not passed when the wait timed out.
type NotReadyError struct {
	After   time.Duration
	Failing []Failure
}

// Failure is a probe that has not passed, with its last error.
type Failure struct {
	Probe Probe
	Err   error
}

func (e *NotReadyError) Error() string {
	parts := make([]string, len(e.Failing))
	for i, f := range e.Failing {
		parts[i] = fmt.Sprintf("%s: %v", f.Probe, f.Err)
	}
	return fmt.Sprintf("not ready after %s: %s", e.After, strings.Join(parts, "; "))
}

var errTimeout = errors.New("readiness timeout")

// Wait polls every probe until all have passed, and returns nil then. It
// returns a *NotReadyError when cfg.Timeout elapses first, context.Cause(ctx)
// when ctx is done first, and the probe's error when a probe can never pass.
// With no probes it returns nil at once. A notify probe is not polled: it
// waits for its sender's READY=1, and, with a timeout, the sender's
// EXTEND_TIMEOUT_USEC=N moves the end of the wait to at least N from then.
func Wait(ctx context.Context, probes []Probe, cfg Config) error {
	if len(probes) == 0 {
		return nil
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	dl := NewDeadline(cfg.Timeout)
	defer dl.Stop()
	// Without a timeout there is nothing to extend, and the extensions
	// are left to whoever bounds the wait (a sidecar's runs share theirs).
	var extended <-chan time.Time
	if n := NotifyOf(probes); n != nil && cfg.Timeout > 0 {
		extended = n.Extensions()
	}
	ws := make([]*waiter, len(probes))
	errs := make(chan error, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		ws[i] = &waiter{probe: p, cfg: &cfg}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- ws[i].run(ctx)
		}()
	}
	var first error
	passed := 0
	for left := len(probes); left > 0; {
		select {
		case err := <-errs:
			left--
			switch {
			case err == nil:
				passed++
			case first == nil:
				first = err
				cancel(err)
			}
		case <-dl.C():
			cancel(errTimeout)
		case until := <-extended:
			dl.Extend(until, cfg.Log)
		}
	}
	wg.Wait()
	switch {
	case passed == len(probes):
		cfg.Log.Info("ready", "elapsed", dl.Elapsed().Round(time.Millisecond))
		return nil
	case parent.Err() != nil:
		return context.Cause(parent)
	case errors.Is(context.Cause(ctx), errTimeout):
		nr := &NotReadyError{After: dl.Timeout()}
		for _, w := range ws {
			if !w.passed {
				err := w.lastErr()
				if err == nil {
					err = fmt.Errorf("no attempt finished within %s (attempt timeout %s)", nr.After, cfg.AttemptTimeout)
				}
				nr.Failing = append(nr.Failing, Failure{w.probe, err})
			}
		}
		return nr
	default:
		return first
	}
}

// Deadline ends a wait once its timeout has elapsed. It is a timer rather
// than a context deadline because a notify probe's EXTEND_TIMEOUT_USEC may
// move it later (never earlier): [Wait] keeps one, and so does the wait
// for a start=before sidecar to be ready, which spans its restarts.
type Deadline struct {
	start, at time.Time
	timer     *time.Timer // nil without a timeout
}

// NewDeadline starts a deadline timeout from now; with a timeout of 0 it
// never passes.
func NewDeadline(timeout time.Duration) *Deadline {
	d := &Deadline{start: time.Now()}
	if timeout > 0 {
		d.at = d.start.Add(timeout)
		d.timer = time.NewTimer(timeout)
	}
	return d
}

// C receives once when the deadline passes; it is nil without a timeout.
func (d *Deadline) C() <-chan time.Time {
	if d.timer == nil {
		return nil
	}
	return d.timer.C
}

// Extend moves the deadline to until, and logs it, when until is later
// and the deadline has not passed yet.
func (d *Deadline) Extend(until time.Time, log *slog.Logger) {
	if d.timer == nil || !until.After(d.at) || !d.timer.Stop() {
		return
	}
	d.at = until
	d.timer.Reset(time.Until(until))
	log.Info("readiness deadline extended", "timeout", d.Timeout().Round(time.Millisecond))
}

// Timeout is the time the wait was given, extensions included.
func (d *Deadline) Timeout() time.Duration { return d.at.Sub(d.start) }

// Elapsed is the time since the deadline was started.
func (d *Deadline) Elapsed() time.Duration { return time.Since(d.start) }

// Stop releases the timer.
func (d *Deadline) Stop() {
	if d.timer != nil {
		d.timer.Stop()
	}
}

// awaiter is a probe that is not polled: await blocks until the probe
// passes (nil) or ctx is done.
type awaiter interface {
	await(ctx context.Context) error
}

// waiter polls one probe.
type waiter struct {
	probe  Probe
	cfg    *Config
	passed bool

	mu   sync.Mutex
	last error
}

func (w *waiter) run(ctx context.Context) error {
	var b backoff.BackOff
	if w.cfg.NewBackOff != nil {
		b = w.cfg.NewBackOff()
	} else {
		e := backoff.NewExponentialBackOff()
		e.InitialInterval = w.cfg.Interval
		e.MaxInterval = w.cfg.MaxInterval
		if e.MaxInterval == 0 {
			e.MaxInterval = max(DefaultMaxInterval(w.probe), w.cfg.Interval)
		}
		e.Multiplier = Multiplier
		e.RandomizationFactor = RandomizationFactor
		e.MaxElapsedTime = 0 // the wait's own timeout ends it, not backoff's 15-minute default
		e.Reset()
		b = e
	}
	if aw, ok := w.probe.(awaiter); ok {
		w.mu.Lock()
		w.last = w.probe.Check(ctx, w.cfg.Runner) // what a timeout reports
		w.mu.Unlock()
		if err := aw.await(ctx); err != nil {
			return context.Cause(ctx)
		}
		w.passed = true
		w.cfg.Log.Info("probe passed", "probe", w.probe.String(), "attempt", 1)
		return nil
	}
	// A probe with wake-ups gets its own timer, stopped with ctx; the
	// wait's deferred cancel ends it once the probe passed.
	var timer backoff.Timer
	if wk, ok := w.probe.(waker); ok {
		if ch := wk.wake(ctx); ch != nil {
			timer = newWakeTimer(ctx, ch)
		}
	}
	attempt := 0
	err := backoff.RetryNotifyWithTimer(func() error {
		attempt++
		err := w.attempt(ctx)
		w.mu.Lock()
		if !over(ctx) { // keep the last real error, not the cancellation
			w.last = err
		}
		w.mu.Unlock()
		return err
	}, backoff.WithContext(b, ctx), func(err error, d time.Duration) {
		w.cfg.Log.Debug("probe failed", "probe", w.probe.String(), "attempt", attempt, "delay", d, "err", err)
	}, timer)
	if err == nil {
		w.passed = true
		w.cfg.Log.Info("probe passed", "probe", w.probe.String(), "attempt", attempt)
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx) // cancelled or timed out: Wait reports it
	}
	return fmt.Errorf("probe %s: %w", w.probe, err)
}

// attempt makes one bounded attempt.
func (w *waiter) attempt(ctx context.Context) error {
	actx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
	defer cancel()
	err := w.probe.Check(actx, w.cfg.Runner)
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("attempt timed out after %s", w.cfg.AttemptTimeout)
	}
	return err
}

// over reports whether ctx is done or past its deadline. A dial that
// starts at the deadline fails with "i/o timeout" a moment before ctx's own
// timer marks it done.
func over(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func (w *waiter) lastErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}
