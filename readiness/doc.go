// Package readiness decides when main "can do its job": it parses probe
// specs (tcp:, unix:, http://, https://, file:, log:, exec:) and waits until
// every probe has passed.
//
// # Invariants
//
//   - Every probe is polled in its own goroutine with its own exponential
//     backoff (github.com/cenkalti/backoff/v4, with jitter, capped), so a
//     slow or hanging probe never delays another. A probe that has passed
//     stays passed and is not polled again.
//   - Each attempt is bounded by the attempt timeout; an exec probe that
//     outlives it is killed with its whole process group.
//   - Exec probes start through the [Runner] (the program's reaper), never
//     with [exec.Cmd.Run]: only the reaper waits on children.
//   - The last error of every probe is kept, because backoff drops it when
//     the wait is cancelled; [NotReadyError] names each probe still failing
//     with that error.
//   - A probe that can never pass (its program does not exist) fails the
//     wait at once instead of being retried.
//   - Probes that can tell when to try again (file: through inotify, log:
//     on the matching line) wake their next attempt early; polling goes on
//     beside them as the fallback.
//   - No goroutine or timer is left running once [Wait] returns.
package readiness
