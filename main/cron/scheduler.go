package cron

import (
	"fmt"
	"sync"
	"time"
)

// Late is how late a run may still start: at a wake-up, an entry's
// latest slot runs if it fell due at most Late ago. Past that (a forward
// step of the wall clock, a suspend, a frozen container) it is skipped
// with the others: running it an hour late is running it at the wrong
// time.
const Late = time.Minute

// MaxBackStep is how far the wall clock may go back and the schedule
// wait for it to come again, so that no slot runs twice. Past that (ISC
// cron's own bound: three hours) the schedule starts over from the new
// time, as ISC cron does: a clock set back a year must not stop the jobs
// for a year.
const MaxBackStep = 3 * time.Hour

// maxCount bounds the slots counted in one skip: a wall clock set
// forward by years skips them all, the rest uncounted.
const maxCount = 100000

// Entry is one scheduled entry.
type Entry struct {
	Name     string
	Schedule Schedule
}

// Config is what a [Scheduler] reports to and reads the time from. The
// functions are called from the scheduler's goroutine, one at a time: they
// must return quickly (start a run, log a line) and must not call
// [Scheduler.Stop].
type Config struct {
	// Clock is nil for the real clock.
	Clock Clock
	// Location is the time zone of the cron expressions; nil for
	// time.Local (the TZ variable, or /etc/localtime).
	Location *time.Location
	// Due is called when an entry's run falls due at slot at.
	Due func(name string, at time.Time)
	// Skipped is called once per entry and wake-up when slots were
	// missed: count slots, from first to last, none of which will run
	// (count stops at 100000). Nil: not reported.
	Skipped func(name string, count int, first, last time.Time)
	// SteppedBack is called when a wake-up finds the wall clock set back
	// by more than a second; restarted says whether it was by more than
	// [MaxBackStep], so the schedule started over from the new time.
	// Nil: not reported.
	SteppedBack func(by time.Duration, restarted bool)
}

// Scheduler calls [Config.Due] when its entries fall due, from one
// goroutine with one timer to the next due slot across all entries: no
// wake-up between slots. Nothing falls due before [Scheduler.Start].
// Its methods are safe for concurrent use.
type Scheduler struct {
	cfg   Config
	clock Clock
	loc   *time.Location

	mu      sync.Mutex
	entries []*entry
	byName  map[string]*entry
	started bool
	stopped bool
	// armed is the slot the timer was last set for (the earliest due),
	// to tell a backward step at the wake-up.
	armed time.Time

	stop chan struct{}
	done chan struct{}
}

type entry struct {
	Entry
	due time.Time // the next slot; zero: none (not started, or never)
}

// New returns a scheduler for entries, not started. Names must be unique.
func New(cfg Config, entries []Entry) (*Scheduler, error) {
	s := &Scheduler{cfg: cfg, clock: cfg.Clock, loc: cfg.Location, byName: map[string]*entry{}, stop: make(chan struct{}), done: make(chan struct{})}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.loc == nil {
		s.loc = time.Local
	}
	for _, e := range entries {
		if s.byName[e.Name] != nil {
			return nil, fmt.Errorf("internal error: cron entry %q given twice", e.Name)
		}
		en := &entry{Entry: e}
		s.entries = append(s.entries, en)
		s.byName[e.Name] = en
	}
	return s, nil
}

// now is the wall-clock time, without its monotonic reading: slots are
// wall-clock times, and comparing two times that both carry a monotonic
// reading would compare those instead and miss every step of the wall
// clock.
func (s *Scheduler) now() time.Time { return s.clock.Now().Round(0).In(s.loc) }

// Start makes the entries fall due from now on: each one's first slot is
// its first after now (@every's is one interval from now). It returns at
// once; the scheduler runs until [Scheduler.Stop]. A second call, or a
// call after Stop, does nothing.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	now := s.now()
	for _, e := range s.entries {
		e.due = e.Schedule.Next(now, s.loc)
	}
	t := s.arm(now)
	go s.loop(t)
}

// Stop stops the scheduler and waits for its goroutine: once Stop has
// returned, Due is not called again. It may be called more than once,
// and before Start.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		for _, e := range s.entries {
			e.due = time.Time{}
		}
		close(s.stop)
		if !s.started {
			close(s.done)
		}
	}
	s.mu.Unlock()
	<-s.done
}

// NextDue returns the next slot of the entry named name: the zero time
// before Start, after Stop, for an unknown name and for a schedule that
// never falls due again.
func (s *Scheduler) NextDue(name string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.byName[name]; e != nil {
		return e.due
	}
	return time.Time{}
}

// arm returns a timer to the earliest due slot, or nil when none is due
// ever. Called with mu held.
func (s *Scheduler) arm(now time.Time) Timer {
	var first time.Time
	for _, e := range s.entries {
		if !e.due.IsZero() && (first.IsZero() || e.due.Before(first)) {
			first = e.due
		}
	}
	s.armed = first
	if first.IsZero() {
		return nil
	}
	return s.clock.NewTimer(first.Sub(now))
}

func (s *Scheduler) loop(t Timer) {
	defer close(s.done)
	for {
		var fired <-chan time.Time
		if t != nil {
			fired = t.C()
		}
		select {
		case <-s.stop:
			if t != nil {
				t.Stop()
			}
			return
		case <-fired:
		}
		t = s.wake()
	}
}

// event is one call to make after a wake-up.
type event struct {
	name        string
	due         bool // Due(at); else Skipped(count, at, last)
	at, last    time.Time
	count       int
	back        time.Duration
	steppedBack bool
	restarted   bool
}

// wake handles a firing of the timer: it works out what fell due under
// the lock, calls Config's functions without it, and returns the next
// timer (nil once stopped, or when nothing will ever fall due).
func (s *Scheduler) wake() Timer {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	events := s.due(s.now())
	s.mu.Unlock()

	for _, ev := range events {
		select {
		case <-s.stop:
			return nil
		default:
		}
		switch {
		case ev.steppedBack:
			if s.cfg.SteppedBack != nil {
				s.cfg.SteppedBack(ev.back, ev.restarted)
			}
		case ev.due:
			if s.cfg.Due != nil {
				s.cfg.Due(ev.name, ev.at)
			}
		default:
			if s.cfg.Skipped != nil {
				s.cfg.Skipped(ev.name, ev.count, ev.at, ev.last)
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	return s.arm(s.now())
}

// due moves every entry whose slot has come to its next slot after now,
// and returns what to report: for each, in the entries' order, the
// missed slots and the run. Called with mu held.
//
// The timer runs on the monotonic clock; slots are on the wall clock.
// Woken before the earliest slot, the wall clock was set back: the
// entries keep their slots (none runs twice) unless it went back more than
// MaxBackStep. Woken late (a forward step, a suspend), an entry's latest
// slot runs if at most Late old, and the slots before it are skipped,
// never run in a burst.
func (s *Scheduler) due(now time.Time) []event {
	var events []event
	if back := s.armed.Sub(now); back > 0 {
		restart := back > MaxBackStep
		if back > time.Second {
			events = append(events, event{steppedBack: true, back: back, restarted: restart})
		}
		if restart {
			for _, e := range s.entries {
				e.due = e.Schedule.Next(now, s.loc)
			}
		}
		return events
	}
	for _, e := range s.entries {
		if e.due.IsZero() || e.due.After(now) {
			continue
		}
		// The slots due by now: e.due, then each next one up to now;
		// before is the one before the last.
		var before, last time.Time
		count := 0
		for slot := e.due; !slot.IsZero() && !slot.After(now) && count < maxCount; slot = e.Schedule.Next(slot, s.loc) {
			before, last = last, slot
			count++
		}
		run := count < maxCount && now.Sub(last) <= Late
		skipped := event{name: e.Name, count: count, at: e.due, last: last}
		if run {
			skipped.count, skipped.last = count-1, before
		}
		if skipped.count > 0 {
			events = append(events, skipped)
		}
		if run {
			events = append(events, event{name: e.Name, due: true, at: last})
		}
		if count < maxCount {
			e.due = e.Schedule.Next(last, s.loc)
		} else {
			e.due = e.Schedule.Next(now, s.loc)
		}
	}
	return events
}
