package cron

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		want  string // error substring; "" for none
		fixed bool
	}{
		{"*/5 * * * *", "", false},
		{"30 2 * * *", "", true},
		{"0 * * * *", "", false},
		{"0 9-17/2 * * mon-fri", "", true},
		{"15 3 1,15 jan,jul sun", "", true},
		{"  0   0 *  * *  ", "", true},
		{"@hourly", "", false},
		{"@daily", "", true},
		{"@midnight", "", true},
		{"@weekly", "", true},
		{"@monthly", "", true},
		{"@yearly", "", true},
		{"@annually", "", true},
		{"@every 90s", "", false},
		{"@every 1h30m", "", false},
		{"", "empty schedule", false},
		{"* * * *", "want 5 fields", false},
		{"0 * * * * *", "got 6 words", false},
		{"60 * * * *", `minute "60"`, false},
		{"* 24 * * *", `hour "24"`, false},
		{"* * 0 * *", `day-of-month "0"`, false},
		{"* * * 13 *", `month "13"`, false},
		{"* * * foo *", `month "foo"`, false},
		{"0 0 * * 7", `day-of-week "7": end of range (7) above maximum (6): 7 (Sunday is 0 or sun)`, false},
		{"*/0 * * * *", `minute "*/0"`, false},
		{"5-1 * * * *", `minute "5-1"`, false},
		{"0 0 L * *", `day-of-month "L"`, false},
		{"0 0 * * 1#2", `day-of-week "1#2"`, false},
		{"0 0 30 2 *", "never falls due", false},
		{"@reboot", "--before task", false},
		{"@often", `"@often": unknown keyword`, false},
		{"@daily 3", "a keyword stands alone", false},
		{"@every", "want @every DURATION", false},
		{"@every 500ms", `@every "500ms": want a duration of 1s or more`, false},
		{"@every -1m", `@every "-1m"`, false},
		{"@every soon", `@every "soon"`, false},
		{"TZ=UTC 0 0 * * *", "want 5 fields", false},
		{"CRON_TZ= * * * *", `minute "CRON_TZ="`, false},
		{"TZ=x * * * *", `minute "TZ=x"`, false},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := Parse(tc.spec)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if s.fixed != tc.fixed {
					t.Errorf("fixed-time %v, want %v", s.fixed, tc.fixed)
				}
				if s.String() != strings.Join(strings.Fields(tc.spec), " ") {
					t.Errorf("String %q", s.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v; want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of more than one line: %q", err)
			}
		})
	}
}

// FuzzParse: the library is never let panic, and what parses has a next
// slot computed in bounded time.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "0 0 1,15 * mon", "@every 1m", "@daily", "1-5/2 3-4,6 */7 jan-mar 0-6", "TZ=", "CRON_TZ=x y"} {
		f.Add(s)
	}
	loc := mustLoad(f, "Europe/Berlin")
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec)
		if err != nil {
			return
		}
		at := time.Date(2026, 10, 25, 1, 0, 0, 0, loc)
		if next := s.Next(at, loc); !next.After(at) {
			t.Errorf("%q: Next(%v) = %v", spec, at, next)
		}
	})
}

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("%v (tzdata is needed for the daylight-saving tests)", err)
	}
	return loc
}

// slots lists s's slots after from, up to and including to, as
// "15:04MST" in loc.
func slots(t *testing.T, s Schedule, loc *time.Location, from, to time.Time) string {
	t.Helper()
	var out []string
	for at := s.Next(from, loc); !at.IsZero() && !at.After(to); at = s.Next(at, loc) {
		out = append(out, at.In(loc).Format("15:04MST"))
		if len(out) > 100 {
			t.Fatal("more than 100 slots")
		}
	}
	return strings.Join(out, " ")
}

// TestNextDST: across daylight-saving changes a schedule falls due as ISC
// cron runs it. Fixed-time jobs (neither minute nor hour starts with *):
// a time the spring-forward gap skips runs at the end of the gap, once; a
// time the fall-back hour repeats runs once, the first time. Wildcard
// jobs follow the wall clock: they lose the gap (no time is lost in real
// time) and run in both copies of the repeated hour. @every counts real
// time. What the library alone does is in the commit that chose it:
// robfig/cron's Next skips the gap's fixed times for the day and runs the
// repeated hour's twice.
func TestNextDST(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	newYork := mustLoad(t, "America/New_York")
	saoPaulo := mustLoad(t, "America/Sao_Paulo")
	lordHowe := mustLoad(t, "Australia/Lord_Howe")
	for _, tc := range []struct {
		name, spec string
		loc        *time.Location
		from, to   time.Time
		want       string
	}{
		// Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST.
		{"spring fixed in the gap", "30 2 * * *", berlin, time.Date(2026, 3, 28, 0, 0, 0, 0, berlin), time.Date(2026, 3, 30, 12, 0, 0, 0, berlin), "02:30CET 03:00CEST 02:30CEST"},
		{"spring fixed at the gap's start", "0 2 * * *", berlin, time.Date(2026, 3, 29, 0, 0, 0, 0, berlin), time.Date(2026, 3, 29, 12, 0, 0, 0, berlin), "03:00CEST"},
		{"spring fixed, two in the gap run once", "0,30 2 * * *", berlin, time.Date(2026, 3, 29, 0, 0, 0, 0, berlin), time.Date(2026, 3, 29, 12, 0, 0, 0, berlin), "03:00CEST"},
		{"spring fixed at the gap's end", "0 3 * * *", berlin, time.Date(2026, 3, 29, 0, 0, 0, 0, berlin), time.Date(2026, 3, 29, 12, 0, 0, 0, berlin), "03:00CEST"},
		{"spring fixed around the gap", "30 1-3 * * *", berlin, time.Date(2026, 3, 29, 0, 0, 0, 0, berlin), time.Date(2026, 3, 29, 12, 0, 0, 0, berlin), "01:30CET 03:00CEST 03:30CEST"},
		{"spring wildcard minutes", "*/20 * * * *", berlin, time.Date(2026, 3, 29, 1, 0, 0, 0, berlin), time.Date(2026, 3, 29, 3, 40, 0, 0, berlin), "01:20CET 01:40CET 03:00CEST 03:20CEST 03:40CEST"},
		{"spring hourly", "@hourly", berlin, time.Date(2026, 3, 29, 0, 30, 0, 0, berlin), time.Date(2026, 3, 29, 4, 0, 0, 0, berlin), "01:00CET 03:00CEST 04:00CEST"},
		{"spring wildcard hour, fixed minute", "15 * * * *", berlin, time.Date(2026, 3, 29, 1, 0, 0, 0, berlin), time.Date(2026, 3, 29, 4, 0, 0, 0, berlin), "01:15CET 03:15CEST"},
		{"spring every", "@every 30m", berlin, time.Date(2026, 3, 29, 1, 10, 0, 0, berlin), time.Date(2026, 3, 29, 3, 10, 0, 0, berlin), "01:40CET 03:10CEST"},
		// Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET.
		{"fall fixed in the repeated hour", "30 2 * * *", berlin, time.Date(2026, 10, 24, 12, 0, 0, 0, berlin), time.Date(2026, 10, 26, 12, 0, 0, 0, berlin), "02:30CEST 02:30CET"},
		{"fall fixed runs once", "30 2 * * *", berlin, time.Date(2026, 10, 25, 0, 0, 0, 0, berlin), time.Date(2026, 10, 25, 12, 0, 0, 0, berlin), "02:30CEST"},
		{"fall fixed around the hour", "30 1-3 * * *", berlin, time.Date(2026, 10, 25, 0, 0, 0, 0, berlin), time.Date(2026, 10, 25, 12, 0, 0, 0, berlin), "01:30CEST 02:30CEST 03:30CET"},
		{"fall fixed at 03:00", "0 3 * * *", berlin, time.Date(2026, 10, 25, 0, 0, 0, 0, berlin), time.Date(2026, 10, 25, 12, 0, 0, 0, berlin), "03:00CET"},
		{"fall wildcard minutes", "*/20 * * * *", berlin, time.Date(2026, 10, 25, 1, 50, 0, 0, berlin), time.Date(2026, 10, 25, 3, 0, 0, 0, berlin), "02:00CEST 02:20CEST 02:40CEST 02:00CET 02:20CET 02:40CET 03:00CET"},
		{"fall hourly", "@hourly", berlin, time.Date(2026, 10, 25, 0, 30, 0, 0, berlin), time.Date(2026, 10, 25, 4, 0, 0, 0, berlin), "01:00CEST 02:00CEST 02:00CET 03:00CET 04:00CET"},
		{"fall every", "@every 30m", berlin, time.Date(2026, 10, 25, 0, 10, 0, 0, time.UTC), time.Date(2026, 10, 25, 3, 10, 0, 0, berlin), "02:40CEST 02:10CET 02:40CET 03:10CET"},
		// Starting inside the repeated hour (the first run after Start):
		// a fixed time not run yet runs in the second copy.
		{"fall fixed from the second copy", "30 2 * * *", berlin, time.Date(2026, 10, 25, 1, 10, 0, 0, time.UTC), time.Date(2026, 10, 25, 12, 0, 0, 0, berlin), "02:30CET"},
		// New York, 2026-03-08 02:00 EST → 03:00 EDT; 2026-11-01 02:00 EDT → 01:00 EST.
		{"new york spring", "30 2 * * *", newYork, time.Date(2026, 3, 8, 0, 0, 0, 0, newYork), time.Date(2026, 3, 8, 12, 0, 0, 0, newYork), "03:00EDT"},
		{"new york fall", "30 1 * * *", newYork, time.Date(2026, 11, 1, 0, 0, 0, 0, newYork), time.Date(2026, 11, 1, 12, 0, 0, 0, newYork), "01:30EDT"},
		{"new york fall wildcard", "30 * * * *", newYork, time.Date(2026, 11, 1, 0, 0, 0, 0, newYork), time.Date(2026, 11, 1, 3, 0, 0, 0, newYork), "00:30EDT 01:30EDT 01:30EST 02:30EST"},
		// São Paulo, 2018-11-04: midnight did not exist (00:00 → 01:00).
		{"midnight in the gap", "@daily", saoPaulo, time.Date(2018, 11, 3, 12, 0, 0, 0, saoPaulo), time.Date(2018, 11, 5, 12, 0, 0, 0, saoPaulo), "01:00-02 00:00-02"},
		// Lord Howe, 2026-10-04: 02:00 becomes 02:30 (+10:30 → +11).
		{"half-hour gap", "15 2 * * *", lordHowe, time.Date(2026, 10, 4, 0, 0, 0, 0, lordHowe), time.Date(2026, 10, 4, 12, 0, 0, 0, lordHowe), "02:30+11"},
		{"no daylight saving", "*/30 * * * *", time.UTC, time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 2, 0, 0, 0, time.UTC), "00:30UTC 01:00UTC 01:30UTC 02:00UTC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := slots(t, s, tc.loc, tc.from, tc.to); got != tc.want {
				t.Errorf("%s from %v:\n got %s\nwant %s", tc.spec, tc.from.In(tc.loc), got, tc.want)
			}
		})
	}
}
