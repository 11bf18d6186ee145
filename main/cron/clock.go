package cron

import "time"

// Clock is where the scheduler reads the time and gets its timer: the
// real clock (a nil [Config.Clock]) or a [Fake] in tests.
type Clock interface {
	// Now returns the wall-clock time.
	Now() time.Time
	// NewTimer returns a timer that fires once d has passed, measured as
	// Go's timers measure it: on the monotonic clock, which a change of
	// the wall clock does not move and a suspend stops.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer, as [time.Timer].
type Timer interface {
	// C delivers the time once the timer fires.
	C() <-chan time.Time
	// Stop keeps the timer from firing; it reports whether it did.
	Stop() bool
}

// realClock is the system's clock and Go's timers.
type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
