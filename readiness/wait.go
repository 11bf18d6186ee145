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
	Runner Runner
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
// waits for main's READY=1, and main's EXTEND_TIMEOUT_USEC=N moves the
// end of the wait to at least N from then.
func Wait(ctx context.Context, probes []Probe, cfg Config) error {
	if len(probes) == 0 {
		return nil
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	// The deadline is a timer rather than a context deadline, because a
	// notify probe may move it.
	var (
		deadline time.Time
		expired  <-chan time.Time
		timer    *time.Timer
	)
	if cfg.Timeout > 0 {
		deadline = start.Add(cfg.Timeout)
		timer = time.NewTimer(cfg.Timeout)
		defer timer.Stop()
		expired = timer.C
	}
	var extended <-chan time.Time
	for _, p := range probes {
		if e, ok := p.(extender); ok && timer != nil {
			extended = e.deadlines() // at most one notify probe
		}
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
		case <-expired:
			expired = nil
			cancel(errTimeout)
		case until := <-extended:
			if expired != nil && until.After(deadline) {
				deadline = until
				timer.Reset(time.Until(until))
				cfg.Log.Info("readiness deadline extended", "timeout", until.Sub(start).Round(time.Millisecond))
			}
		}
	}
	wg.Wait()
	switch {
	case passed == len(probes):
		cfg.Log.Info("ready", "elapsed", time.Since(start).Round(time.Millisecond))
		return nil
	case parent.Err() != nil:
		return context.Cause(parent)
	case errors.Is(context.Cause(ctx), errTimeout):
		nr := &NotReadyError{After: deadline.Sub(start)}
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

// awaiter is a probe that is not polled: await blocks until the probe
// passes (nil) or ctx is done.
type awaiter interface {
	await(ctx context.Context) error
}

// extender is a probe that may move the end of the wait: deadlines
// receives a moment the wait should not end before.
type extender interface {
	deadlines() <-chan time.Time
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
