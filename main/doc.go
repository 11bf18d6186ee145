// Package mainproc runs the long-running children: the main process, the
// server that owns the container's lifetime, and the sidecars kept up
// beside it. It lives in directory main/ because the design card
// fixes that name, but Go cannot import a package named main, so it is
// declared as mainproc and imported with an explicit name:
//
//	import mainproc "github.com/mainstay-dev/mainstay/main"
//
// # Invariants
//
//   - Main is started through the [reaper.Reaper], in a process group of its
//     own, with the program's own stdin, stdout and stderr. Only when an
//     observer is given (a log: probe) do stdout and stderr go through pipes
//     that the reaper copies, byte for byte, to mainstay's own and to the
//     observer; they are kept open after main's exit ([reaper.KeepOutput])
//     for what main left running, until [Process.FlushOutput] after the
//     final sweep.
//   - The signals mainstay forwards are subscribed with [signal.Notify]
//     once, by [Subscribe], before any child starts; until main exists
//     [Signals.Watch] handles them, then one goroutine of main's, the only
//     code that signals main. A Go PID 1 that does not subscribe to SIGTERM exits 2 on
//     "docker stop", and [signal.Ignore] would leak SIG_IGN into children,
//     so nothing is ignored.
//   - SIGCHLD (the reaper's), SIGURG (the Go runtime's preemption), SIGTTIN
//     and SIGTTOU (job control aimed at mainstay itself), SIGPIPE, SIGPROF
//     and signals 32 to 34 (which Go never delivers) are never subscribed,
//     hence never forwarded. Fault signals are subscribed: one sent with
//     kill is forwarded, while a real fault in mainstay still crashes it.
//   - The subscription outlives main: a signal during the final sweep must
//     not fall back to Go's default action (exit 2 for a Go PID 1).
//   - Until [Process.Foreground] is called (start-up), SIGTERM, SIGINT and
//     SIGQUIT abort start-up: main is stopped and [Process.Aborted] is
//     closed. Every other signal goes to main. Afterwards every signal goes
//     to main, SIGTERM replaced by the stop signal.
//   - Once main is asked to stop (the stop signal, or a forwarded SIGTERM,
//     SIGINT or SIGQUIT), the stop's one budget runs: main has until
//     [Process.StopDeadline] to exit, then it is sent SIGKILL. The timer is
//     armed once and never re-armed, and [Process.Stop] after that sends
//     nothing more. Each stop signal is followed by SIGCONT to main's
//     group, so a stopped main acts on it. A main not reaped
//     [reaper.KillWait] after its SIGKILL is given up on by [Process.Wait].
//   - Signals ignored when mainstay started (only SIGHUP and SIGINT can be
//     known in Go) are never subscribed, so children inherit them ignored.
//   - Log lines and main's copied output may be written while another job
//     has the terminal: [ForegroundSafe] writes them with SIGTTOU blocked,
//     and [Reclaim] takes the terminal back when a foreground job ends.
//   - The terminal is only touched when stdin is one and it is the
//     controlling terminal: [Process.Foreground] then gives main the
//     terminal's foreground, with SIGTTOU blocked on a locked OS thread, and
//     continues main if a job-control signal stopped it — exactly "fg %1".
//   - A [Sidecar] is kept up by its own goroutine: each run is started
//     from a copy of its [reaper.Spec] with KillGroup (its group dies with
//     it, before its exit is reported) and stdin from /dev/null, and
//     restarted by its policy after a backoff delay. A run's exit is its
//     leader's: a descendant that left the group and holds the run's
//     output delays the restart, or the end of a stop, by at most the
//     reaper's output bound, and is logged as "left running by sidecar
//     NAME". Each run has its own prefixer, ended with the run. A run never starts once [Sidecar.Stop]
//     was called: the check and the start share the sidecar's mutex. A
//     sidecar stopped on request never counts as failed.
//   - A sidecar with a [Daemon] (pidfile=) runs a start command without
//     KillGroup and with its output kept open; after its exit 0 the
//     pidfile is read until the reaper adopts the PID it names
//     ([reaper.Reaper.Adopt]) or the daemon's timeout ends the run as a
//     failed start (exit status 1); so does a PID read twice that no
//     process has (the daemon died before it was adopted). The adopted daemon's exit is the run's
//     exit; its ReadyCheck starts once it is adopted; its stop signal goes
//     to the daemon (and its group when it leads one). Nothing a refused
//     PID names is signalled.
//   - A sidecar without a Daemon whose run ends within a second, not asked
//     to stop, is logged at WARN with the cures for a program that
//     daemonizes.
//   - Each run of a sidecar has a [ReadyCheck] of its own, made before the
//     run starts (its Env reaches that run only) and closed once the run
//     has exited, before the next one starts: a restarted sidecar is
//     Restarting until its new run is ready, whatever earlier runs said.
package mainproc
