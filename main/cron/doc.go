// Package cron is the time side of mainstay's scheduled jobs (--cron,
// --crontab): it reads schedules ([Parse]) and says when each entry falls
// due ([Scheduler]). It starts no process: the lifecycle does, when
// [Config.Due] is called, and applies overlap= and timeout= itself.
//
// Cron expressions are read by github.com/robfig/cron/v3, the parser
// Kubernetes' CronJob uses; only its parser and its Next are used, on
// wall-clock readings in UTC, where no hour is skipped or repeated. The
// daylight-saving rules are applied here, as ISC cron applies them
// ([Schedule.Next]).
//
// # Invariants
//
//   - One goroutine and one timer per Scheduler: the timer is set to the
//     earliest due slot across all entries, and nothing wakes the
//     scheduler between two slots (no polling).
//   - Nothing falls due before [Scheduler.Start], which the lifecycle
//     calls once main is ready and the helpers are done; @every counts
//     its first interval from there, then from each slot (not from the
//     end of a run).
//   - Slots are wall-clock times; Go's timers run on the monotonic clock,
//     which a step of the wall clock does not move and a suspend stops.
//     So the wall clock is read again at each wake-up: slots it has
//     passed without a wake-up (a forward step, a suspend, a frozen
//     container) are skipped and reported once ([Config.Skipped]), never
//     run in a burst, the latest one still running if it is at most
//     [Late] old; a backward step makes no slot run twice (up to
//     [MaxBackStep]; past that the schedule starts over from the new
//     time).
//   - Once [Scheduler.Stop] has returned, [Config.Due] is not called
//     again.
//   - [Config.Due], [Config.Skipped] and [Config.SteppedBack] are called
//     from the scheduler's goroutine, one at a time, in the order of the
//     entries.
//
// Only the [Clock] is faked in tests ([Fake]): its wall clock and its
// monotonic clock move apart, as a process sees them do.
package cron
