// Package readiness decides when main "can do its job": it parses probe
// specs (tcp:, unix:, http://, https://, file:, log:, exec:, notify) and
// waits until every probe has passed.
//
// # Invariants
//
//   - [Parse] refuses a spec that can never pass whatever main does (a host
//     that is neither an IP address nor a valid name, an over-long socket
//     path, a NUL byte); a name that does not resolve yet is accepted.
//   - No password shows: a probe's String, every error of [Parse] and
//     so every log line, attempt error and [NotReadyError] show a spec with
//     the password of its URL replaced by xxxxx (as (*url.URL).Redacted
//     does; a URL inside an exec: command too). Only the request itself
//     carries the password. [Redact] does the same for free text that
//     quotes specs (a --sidecar line, a usage error).
//   - Every polled probe is polled in its own goroutine with its own
//     exponential backoff (github.com/cenkalti/backoff/v4, with jitter,
//     capped: Config.MaxInterval, or [DefaultMaxInterval] per kind when it
//     is 0), so a slow or hanging probe never delays another. A probe that
//     has passed stays passed and is not polled again.
//   - A [Notify] probe is not polled: its goroutine waits for its sender's
//     READY=1 (main's, or one sidecar run's). Its socket is read from
//     [Notify.Start] until [Notify.Close], beyond the wait (for
//     STOPPING=1); only messages whose credentials show the sender's
//     process tree or the sender's user are believed, and every
//     descriptor that arrives with a message is closed as soon as the
//     sender is placed (the tree is read while a barrier sender still
//     waits). Main and sidecars share this one implementation.
//   - A notify log line names the sender as it is, with its own PID:
//     "main" (or "sidecar") for the tree, "a process of main's user"
//     otherwise; only the tree's STOPPING=1 closes [Notify.Stopping].
//   - What a notify sender can make mainstay log is bounded: one message
//     counts each field once (the first STATUS=, as systemd), and refused
//     messages make one line, then one count per [RefusedInterval]. A
//     sender found outside the tree is remembered (PID and start time):
//     its next messages cost one read of /proc, not a walk.
//   - Each run of a sidecar has a notify socket and ready state of its
//     own ([Notify.ForRun]): nothing sent to an earlier run's socket can
//     make a later run ready.
//   - The wait's deadline is a [Deadline], a timer rather than a context
//     deadline, so that a notify probe's EXTEND_TIMEOUT_USEC can move it
//     later (never earlier). A wait without a timeout leaves the
//     extensions to whoever bounds it.
//   - Each attempt is bounded by the attempt timeout; an exec probe that
//     outlives it is killed with its whole process group.
//   - Exec probes start through the [reaper.Runner] (the program's reaper), never
//     with [exec.Cmd.Run]: only the reaper waits on children.
//   - The last error of every probe is kept, because backoff drops it when
//     the wait is cancelled; [NotReadyError] names each probe still failing
//     with that error.
//   - A probe that can never pass (its program does not exist or cannot be
//     executed) fails the wait at once instead of being retried. Any other
//     start failure (EAGAIN, EMFILE, ENOMEM) is one failed attempt.
//   - Probes that can tell when to try again (file: and unix: through
//     inotify on their directory, log: on the matching line) wake their
//     next attempt early; polling goes on beside them as the fallback.
//   - No goroutine or timer of the wait is left running once [Wait]
//     returns (a Notify's socket reader belongs to the Notify, not the wait).
package readiness
