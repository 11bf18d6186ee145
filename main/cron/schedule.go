package cron

import (
	"errors"
	"fmt"
	"strings"
	"time"

	robfig "github.com/robfig/cron/v3"
)

// Schedule is when an entry falls due: a cron expression read on the wall
// clock of a time zone, or an @every interval. The zero Schedule is never
// due; [Parse] makes the others.
type Schedule struct {
	spec string
	// expr is the library's schedule, asked only for wall-clock readings
	// in UTC, where no hour is skipped or repeated; nil for @every.
	expr robfig.Schedule
	// every is @every's interval.
	every time.Duration
	// fixed is ISC cron's "fixed-time" job: neither the minute nor the
	// hour field starts with "*". Only fixed-time jobs run late after a
	// spring-forward gap and are not repeated in a fall-back hour.
	fixed bool
}

// Keywords lists the schedules [Parse] takes besides five fields, for
// messages and help.
const Keywords = "@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually or @every DURATION"

// fieldNames names the five fields in order, for error lines.
var fieldNames = [5]string{"minute", "hour", "day-of-month", "month", "day-of-week"}

// parser reads five fields, as Kubernetes' CronJob does with this library:
// no seconds, no Quartz extensions (L, W, #), names for months and days.
var parser = robfig.NewParser(robfig.Minute | robfig.Hour | robfig.Dom | robfig.Month | robfig.Dow | robfig.Descriptor)

// Parse reads a schedule: five fields (minute hour day-of-month month
// day-of-week, as crontab(5) writes them), a keyword (@hourly, @daily,
// @midnight, @weekly, @monthly, @yearly, @annually) or "@every DURATION"
// (time.ParseDuration's syntax, 1s or more). The error names the bad word:
// the field, the keyword or the duration.
func Parse(spec string) (Schedule, error) {
	words := strings.Fields(spec)
	s := Schedule{spec: strings.Join(words, " ")}
	switch {
	case len(words) == 0:
		return Schedule{}, errors.New("empty schedule")
	case words[0] == "@every":
		if len(words) != 2 {
			return Schedule{}, fmt.Errorf("%q: want @every DURATION, as @every 90s", s.spec)
		}
		d, err := time.ParseDuration(words[1])
		if err != nil || d < time.Second {
			return Schedule{}, fmt.Errorf("@every %q: want a duration of 1s or more, as 90s or 1h30m", words[1])
		}
		s.every = d
		return s, nil
	case words[0] == "@reboot":
		return Schedule{}, errors.New(`"@reboot" is not a schedule here: a command to run once at start is a --before task or a --helper`)
	case strings.HasPrefix(words[0], "@"):
		if len(words) != 1 {
			return Schedule{}, fmt.Errorf("%q: a keyword stands alone", s.spec)
		}
		expr, err := parse(words[0])
		if err != nil {
			return Schedule{}, fmt.Errorf("%q: unknown keyword (want %s)", words[0], Keywords)
		}
		s.expr, s.fixed = expr, words[0] != "@hourly"
	case len(words) != 5:
		return Schedule{}, fmt.Errorf("%q: want 5 fields (minute hour day-of-month month day-of-week), %s; got %d words", s.spec, Keywords, len(words))
	default:
		expr, err := parse(s.spec)
		if err != nil {
			return Schedule{}, badField(words, err)
		}
		s.expr = expr
		s.fixed = !strings.HasPrefix(words[0], "*") && !strings.HasPrefix(words[1], "*")
	}
	// The library gives up after five years: "0 0 30 2 *" never comes.
	if s.expr.Next(time.Now().UTC()).IsZero() {
		return Schedule{}, fmt.Errorf("%q: never falls due (no such date)", s.spec)
	}
	return s, nil
}

// parse calls the library, which must not take mainstay down with it: a
// panic becomes an error. (Its known panics need a TZ= prefix, which no
// word reaches it with; this is the belt to those braces.)
func parse(spec string) (expr robfig.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			expr, err = nil, fmt.Errorf("internal error: the cron library failed on %q: %v", spec, r)
		}
	}()
	return parser.Parse(spec)
}

// badField names the first of the five fields that the library refuses
// on its own (the others replaced by "*"), since its message does not say
// which field it read.
func badField(words []string, err error) error {
	for i, w := range words {
		alone := []string{"*", "*", "*", "*", "*"}
		alone[i] = w
		if _, ferr := parse(strings.Join(alone, " ")); ferr != nil {
			hint := ""
			if i == 4 && strings.Contains(w, "7") {
				hint = " (Sunday is 0 or sun)"
			}
			return fmt.Errorf("%s %q: %v%s", fieldNames[i], w, ferr, hint)
		}
	}
	return fmt.Errorf("%q: %v", strings.Join(words, " "), err)
}

// String returns the schedule as given, its words separated by one space.
func (s Schedule) String() string { return s.spec }

// Every returns @every's interval, or 0 for a cron expression.
func (s Schedule) Every() time.Duration { return s.every }

// Next returns the first time the schedule falls due strictly after t,
// reading cron expressions on the wall clock of loc, as ISC cron does
// across daylight-saving changes:
//
//   - a wall-clock time that a spring-forward gap skips runs at the end of
//     the gap (03:00 for 02:30) if the job is fixed-time (neither its
//     minute nor its hour field starts with "*"); a wildcard job just
//     goes on with the new hour;
//   - a wall-clock time that a fall-back hour repeats runs once (the
//     first time) for a fixed-time job; a wildcard job also runs in the
//     repeated hour (@hourly at 02:00 CEST and at 02:00 CET).
//
// @every counts from t itself. The zero time means never.
func (s Schedule) Next(t time.Time, loc *time.Location) time.Time {
	switch {
	case s.every > 0:
		return t.Add(s.every)
	case s.expr == nil:
		return time.Time{}
	}
	t = t.In(loc)
	// from is the wall-clock reading after which the library looks, as a
	// UTC time: there no hour is skipped or repeated. One zone period (a
	// stretch of one UTC offset) at a time.
	from := wall(t)
	for range 100 {
		w := s.expr.Next(from)
		if w.IsZero() {
			return time.Time{}
		}
		if w.Before(wall(t)) {
			// A fixed-time slot in the gap before this period.
			return t
		}
		_, off := t.Zone()
		_, end := t.ZoneBounds()
		r := w.Add(-time.Duration(off) * time.Second).In(loc)
		if end.IsZero() || r.Before(end) {
			return r
		}
		// The slot is past this period: look again from where the next
		// one starts. A fixed-time job goes on from where this period's
		// wall clock stopped (so the gap's slots come back, the repeated
		// hour's are behind); a wildcard job follows the new wall clock.
		if s.fixed {
			from = w0(end, off)
		} else {
			_, next := end.In(loc).Zone()
			from = w0(end, next)
		}
		t = end.In(loc)
	}
	return time.Time{}
}

// wall is t's wall-clock reading in its location, as a UTC time.
func wall(t time.Time) time.Time {
	_, off := t.Zone()
	return t.UTC().Add(time.Duration(off) * time.Second)
}

// w0 is just before the wall-clock reading of instant t at UTC offset off,
// as a UTC time: the library's Next looks strictly after it, so a slot at
// that very reading counts.
func w0(t time.Time, off int) time.Time {
	return t.UTC().Add(time.Duration(off)*time.Second - time.Nanosecond)
}
