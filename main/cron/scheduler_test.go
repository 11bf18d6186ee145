package cron

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// harness runs a Scheduler on a Fake clock and records what it reports,
// one line per call, times as "15:04MST" in the schedule's zone.
type harness struct {
	t   *testing.T
	f   *Fake
	s   *Scheduler
	loc *time.Location

	mu     sync.Mutex
	events []string
	// during, when set, is called from Due (a run that takes time).
	during func()
}

func newHarness(t *testing.T, loc *time.Location, start time.Time, specs ...string) *harness {
	t.Helper()
	h := &harness{t: t, f: NewFake(start), loc: loc}
	var entries []Entry
	for _, spec := range specs {
		name, spec, _ := strings.Cut(spec, "=")
		s, err := Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, Entry{Name: name, Schedule: s})
	}
	s, err := New(Config{
		Clock:    h.f,
		Location: loc,
		Due: func(name string, at time.Time) {
			h.record("%s %s", name, h.hm(at))
			if h.during != nil {
				h.during()
			}
		},
		Skipped: func(name string, count int, first, last time.Time) {
			h.record("%s skipped %d %s..%s", name, count, h.hm(first), h.hm(last))
		},
		SteppedBack: func(by time.Duration, restarted bool) {
			h.record("back %s restarted=%v", by, restarted)
		},
	}, entries)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	t.Cleanup(s.Stop)
	return h
}

func (h *harness) hm(t time.Time) string { return t.In(h.loc).Format("15:04MST") }

func (h *harness) record(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, fmt.Sprintf(format, args...))
}

// take returns the lines recorded since the last take.
func (h *harness) take() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := strings.Join(h.events, "\n")
	h.events = nil
	return s
}

// advance lets d pass on the fake clock, timer by timer: after each
// firing it waits until the scheduler has set its next timer, so that all
// it reports for that wake-up is recorded.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	for {
		u, ok := h.f.Until()
		if !ok || u > d {
			h.f.Advance(d)
			return
		}
		n := h.f.Timers()
		h.f.Advance(u)
		d -= u
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := h.f.WaitTimers(ctx, n+1)
		cancel()
		if err != nil {
			h.t.Fatalf("the scheduler did not set its next timer after a wake-up: %v", err)
		}
	}
}

func (h *harness) check(want ...string) {
	h.t.Helper()
	if got, w := h.take(), strings.Join(want, "\n"); got != w {
		h.t.Errorf("got:\n%s\nwant:\n%s", got, w)
	}
}

// TestNotBeforeStart: nothing falls due, and no timer is set, before
// Start; the first slot is the first after Start; @every counts from
// Start.
func TestNotBeforeStart(t *testing.T) {
	h := newHarness(t, time.UTC, time.Date(2026, 5, 4, 9, 58, 30, 0, time.UTC), "tidy=* * * * *", "ping=@every 45s")
	h.advance(10 * time.Minute)
	h.check()
	if n := h.f.Timers(); n != 0 {
		t.Errorf("%d timers before Start", n)
	}
	if d := h.s.NextDue("tidy"); !d.IsZero() {
		t.Errorf("NextDue before Start: %v", d)
	}
	h.s.Start() // 10:08:30
	if d := h.s.NextDue("tidy"); !d.Equal(time.Date(2026, 5, 4, 10, 9, 0, 0, time.UTC)) {
		t.Errorf("NextDue(tidy) after Start: %v", d)
	}
	if d := h.s.NextDue("ping"); !d.Equal(time.Date(2026, 5, 4, 10, 9, 15, 0, time.UTC)) {
		t.Errorf("NextDue(ping) after Start: %v", d)
	}
	h.advance(90 * time.Second) // 10:10:00
	h.check("tidy 10:09UTC", "ping 10:09UTC", "tidy 10:10UTC", "ping 10:10UTC")
}

// TestOneTimer: one timer to the earliest slot across the entries, and
// no wake-up between slots.
func TestOneTimer(t *testing.T) {
	h := newHarness(t, time.UTC, time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC), "backup=@daily", "report=0 12 * * *")
	h.s.Start()
	h.advance(48 * time.Hour)
	h.check("report 12:00UTC", "backup 00:00UTC", "report 12:00UTC", "backup 00:00UTC")
	if n := h.f.Timers(); n != 5 {
		t.Errorf("%d timers set for 4 slots, want 5 (the first and one after each wake-up)", n)
	}
}

// TestEveryFromSlot: @every counts from the previous slot, not from the
// end of a run: a run that takes 4 minutes (the fake clock moves while
// Due runs) does not move the next slot.
func TestEveryFromSlot(t *testing.T) {
	h := newHarness(t, time.UTC, time.Date(2026, 5, 4, 10, 0, 7, 0, time.UTC), "sync=@every 10m")
	h.during = func() { h.f.Advance(4 * time.Minute) }
	h.s.Start()
	// 26 minutes besides the runs' 4 each: slots at 10:10, 10:20 and 10:30,
	// the clock at 10:38:07.
	h.advance(26 * time.Minute)
	h.check("sync 10:10UTC", "sync 10:20UTC", "sync 10:30UTC")
	if d := h.s.NextDue("sync"); !d.Equal(time.Date(2026, 5, 4, 10, 40, 7, 0, time.UTC)) {
		t.Errorf("NextDue %v, want 10:40:07", d)
	}
}

// TestSchedulerDST: the ISC rules of Schedule.Next, through the timer.
// Spring forward in Berlin: the fixed-time job of 02:30 runs at 03:00
// CEST, the end of the gap, in one wake-up with the wildcard jobs.
// Fall back: 02:30 runs once; the wildcard jobs run in both copies of
// the hour; @every keeps counting real time.
func TestSchedulerDST(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	specs := []string{"fixed=30 2 * * *", "half=*/30 * * * *", "hourly=@hourly", "every=@every 45m"}

	h := newHarness(t, berlin, time.Date(2026, 3, 29, 0, 50, 0, 0, berlin), specs...)
	h.s.Start()
	h.advance(3 * time.Hour)
	h.check(
		"half 01:00CET", "hourly 01:00CET",
		"half 01:30CET",
		"every 01:35CET",
		"fixed 03:00CEST", "half 03:00CEST", "hourly 03:00CEST",
		"every 03:20CEST",
		"half 03:30CEST",
		"half 04:00CEST", "hourly 04:00CEST",
		"every 04:05CEST",
		"half 04:30CEST",
		"every 04:50CEST",
	)

	h = newHarness(t, berlin, time.Date(2026, 10, 24, 23, 50, 0, 0, time.UTC), specs...) // 01:50 CEST
	h.s.Start()
	h.advance(3 * time.Hour)
	h.check(
		"half 02:00CEST", "hourly 02:00CEST",
		"fixed 02:30CEST", "half 02:30CEST",
		"every 02:35CEST",
		"half 02:00CET", "hourly 02:00CET",
		"every 02:20CET",
		"half 02:30CET",
		"half 03:00CET", "hourly 03:00CET",
		"every 03:05CET",
		"half 03:30CET",
		"every 03:50CET",
	)
}

// TestStepForward: the wall clock set an hour forward between two slots.
// The timer, on the monotonic clock, fires five minutes later; the slots
// the step passed are skipped, reported once, and only the current one
// runs. A daily job whose slot the step passed by more than Late is
// skipped: it does not run late.
func TestStepForward(t *testing.T) {
	h := newHarness(t, time.UTC, time.Date(2026, 5, 4, 10, 0, 30, 0, time.UTC), "tidy=*/5 * * * *", "nightly=0 11 * * *")
	h.s.Start()
	h.advance(5 * time.Minute) // 10:05:30
	h.check("tidy 10:05UTC")
	h.f.Step(time.Hour)    // 11:05:30 on the wall clock; the timer still waits 4m30s
	h.advance(time.Minute) // nothing fires
	h.check()
	h.advance(4 * time.Minute) // 11:10:30
	h.check("tidy skipped 12 10:10UTC..11:05UTC", "tidy 11:10UTC", "nightly skipped 1 11:00UTC..11:00UTC")
	if d := h.s.NextDue("nightly"); !d.Equal(time.Date(2026, 5, 5, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("NextDue(nightly) %v, want tomorrow 11:00", d)
	}
	h.advance(5 * time.Minute)
	h.check("tidy 11:15UTC")
}

// TestStepBack: the wall clock set back. Within MaxBackStep the entries
// keep their slots: no slot runs twice, and the runs wait for the wall
// clock to come back. Past it the schedule starts over from the new time.
func TestStepBack(t *testing.T) {
	h := newHarness(t, time.UTC, time.Date(2026, 5, 4, 10, 0, 30, 0, time.UTC), "tidy=*/5 * * * *")
	h.s.Start()
	h.advance(5 * time.Minute) // the slot at 10:05:00; 10:05:30
	h.check("tidy 10:05UTC")
	h.f.Step(-time.Hour)       // 09:05:30
	h.advance(5 * time.Minute) // the timer, set for 10:10, fires at 09:10:00 on the wall clock
	h.check("back 1h0m0s restarted=false")
	if d := h.s.NextDue("tidy"); !d.Equal(time.Date(2026, 5, 4, 10, 10, 0, 0, time.UTC)) {
		t.Errorf("NextDue %v, want 10:10 still", d)
	}
	h.advance(59*time.Minute + 29*time.Second) // from 09:10:30 to 10:09:59
	h.check()
	h.advance(time.Second)
	h.check("tidy 10:10UTC")

	h.f.Step(-5 * time.Hour)   // 05:10:00
	h.advance(5 * time.Minute) // the timer, set for 10:15, fires at 05:15
	h.check("back 5h0m0s restarted=true")
	h.advance(5 * time.Minute)
	h.check("tidy 05:20UTC")
}

// TestSuspend: the machine sleeps three hours. The monotonic clock, and
// so the timer, stop meanwhile; at the wake-up the wall clock is three
// hours on: each entry's missed slots are reported once, the @every
// entry's current slot runs, the hourly one's, 10 minutes old, does not.
func TestSuspend(t *testing.T) {
	h := newHarness(t, time.UTC, time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC), "ping=@every 1m", "hourly=@hourly")
	h.s.Start()
	h.advance(10 * time.Minute)
	h.take()
	h.f.Suspend(3 * time.Hour) // 13:10 on the wall clock
	h.advance(time.Minute)     // 13:11
	h.check("ping skipped 180 10:11UTC..13:10UTC", "ping 13:11UTC", "hourly skipped 3 11:00UTC..13:00UTC")
	h.advance(49 * time.Minute)
	if got := h.take(); strings.Count(got, "ping") != 49 || !strings.HasSuffix(got, "hourly 14:00UTC") {
		t.Errorf("after the suspend: %s", got)
	}
}

// TestStop: once Stop has returned nothing is reported, no slot is due,
// and Start does nothing; Stop may be called twice, and before Start.
func TestStop(t *testing.T) {
	h := newHarness(t, time.UTC, time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC), "tidy=* * * * *")
	h.s.Start()
	h.advance(time.Minute)
	h.check("tidy 10:01UTC")
	h.s.Stop()
	h.s.Stop()
	h.f.Advance(time.Hour)
	h.s.Start()
	h.f.Advance(time.Hour)
	h.check()
	if d := h.s.NextDue("tidy"); !d.IsZero() {
		t.Errorf("NextDue after Stop: %v", d)
	}

	never := newHarness(t, time.UTC, time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC), "tidy=* * * * *")
	never.s.Stop()
	never.s.Start()
	never.f.Advance(time.Hour)
	never.check()
}

// TestStopDuringDue: Stop called while Due runs waits for it to return,
// and the other entry due at the same wake-up is not reported.
func TestStopDuringDue(t *testing.T) {
	h := newHarness(t, time.UTC, time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC), "a=* * * * *", "b=* * * * *")
	inDue, release := make(chan struct{}), make(chan struct{})
	h.during = func() { close(inDue); <-release }
	h.s.Start()
	h.f.Advance(time.Minute)
	<-inDue
	stopped := make(chan struct{})
	go func() { h.s.Stop(); close(stopped) }()
	// Stop has begun once the next slots are forgotten.
	deadline := time.Now().Add(10 * time.Second)
	for !h.s.NextDue("b").IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("Stop did not begin")
		}
		runtime.Gosched()
	}
	select {
	case <-stopped:
		t.Fatal("Stop returned while Due was running")
	default:
	}
	close(release)
	<-stopped
	h.check("a 10:01UTC")
}

func TestNewDuplicate(t *testing.T) {
	s, _ := Parse("@daily")
	if _, err := New(Config{}, []Entry{{"a", s}, {"a", s}}); err == nil {
		t.Error("two entries named a: no error")
	}
}
