package cron

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Fake is a [Clock] for tests that moves only when told, keeping the two
// clocks a process sees apart: the wall clock ([Fake.Now]) and the
// monotonic clock that timers run on. [Fake.Advance] moves both, as time
// passing does; [Fake.Step] moves the wall clock alone, as date -s or an
// NTP step does; [Fake.Suspend] moves the wall clock alone too, as a
// suspended machine wakes up to: its timers have not run in the meantime.
// It is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	wall    time.Time
	mono    time.Duration // monotonic time since NewFake
	timers  []*fakeTimer  // pending, unordered
	created int
	changed chan struct{} // closed and replaced at each NewTimer
}

// NewFake returns a fake clock whose wall clock reads wall.
func NewFake(wall time.Time) *Fake {
	return &Fake{wall: wall.Round(0), changed: make(chan struct{})}
}

// Now returns the fake wall-clock time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wall
}

// NewTimer returns a timer that fires once [Fake.Advance] has moved the
// monotonic clock by d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, at: f.mono + max(d, 0), c: make(chan time.Time, 1)}
	f.timers = append(f.timers, t)
	f.created++
	close(f.changed)
	f.changed = make(chan struct{})
	return t
}

// Advance lets d pass on both clocks and fires, in order, every timer
// due by then, each with the wall-clock time of its deadline. It returns
// how many fired. A timer created while Advance runs is not fired by it.
func (f *Fake) Advance(d time.Duration) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.mono + d
	sort.SliceStable(f.timers, func(i, j int) bool { return f.timers[i].at < f.timers[j].at })
	fired := 0
	for len(f.timers) > 0 && f.timers[0].at <= end {
		t := f.timers[0]
		f.timers = f.timers[1:]
		f.wall = f.wall.Add(t.at - f.mono)
		f.mono = t.at
		t.c <- f.wall
		fired++
	}
	f.wall = f.wall.Add(end - f.mono)
	f.mono = end
	return fired
}

// Step sets the wall clock by d (backwards when negative), as date -s or
// an NTP step does; timers do not notice.
func (f *Fake) Step(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
}

// Suspend models a suspend of d (of the machine, or of the VM the
// container runs in): the wall clock moves on by d, the monotonic clock
// and so every timer stop meanwhile. To the process it looks like
// Step(d); it is spelt out for the tests that model one.
func (f *Fake) Suspend(d time.Duration) { f.Step(d) }

// Until returns how long the monotonic clock has to move until the next
// pending timer fires, and false when none is pending.
func (f *Fake) Until() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.timers) == 0 {
		return 0, false
	}
	next := f.timers[0].at
	for _, t := range f.timers {
		next = min(next, t.at)
	}
	return next - f.mono, true
}

// Timers returns how many timers were created so far: a test waits for
// the count to grow ([Fake.WaitTimers]) to know that the code under test
// has handled a firing and waits again.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.created
}

// WaitTimers blocks until n timers were created, or ctx is done.
func (f *Fake) WaitTimers(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		created, changed := f.created, f.changed
		f.mu.Unlock()
		if created >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type fakeTimer struct {
	f  *Fake
	at time.Duration
	c  chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	for i, p := range t.f.timers {
		if p == t {
			t.f.timers = append(t.f.timers[:i], t.f.timers[i+1:]...)
			return true
		}
	}
	return false
}
