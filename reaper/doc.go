// Package reaper owns every child process of mainstay: it is the only code
// in the program that calls wait4, and the only way to start a child. A
// child is described completely by a [Spec] (program, environment, user,
// terminal, output, prefix); [Reaper.Start] is the only code that turns one
// into an [exec.Cmd], and [Reaper.Run] (the [Runner] of helpers and exec
// probes) starts one and waits for it.
//
// # Invariants
//
//   - Only the reaper's drain calls wait4(-1, WNOHANG|WUNTRACED|WCONTINUED),
//     until it returns 0 or ECHILD, and it does so under the registry
//     mutex (below): each reap and the hand-off of its status are one step.
//     The reaper goroutine drains each time waitid(P_ALL, WNOWAIT) says a
//     child has changed state (waitid reaps nothing itself); while the
//     program has no child at all (waitid says ECHILD), it waits for
//     [Reaper.Start] and for SIGCHLD instead. [Reaper.Sweep] and
//     [Proc.Stopped] drain too, so as not to wait for the goroutine: any
//     number of drains may run at once, because the mutex, not the number
//     of goroutines, is what keeps a status from being lost. Nothing else
//     may call [exec.Cmd.Wait], [exec.Cmd.Run], [exec.Cmd.Output] or
//     [exec.Cmd.CombinedOutput] to learn a status: a waiter outside the
//     registry steals statuses (measured: half of them).
//
//   - The registry mutex is held across [exec.Cmd.Start] and the insert into
//     the registry, and across each wait4 and its lookup. A child that exits
//     at once is therefore never mistaken for an orphan, and a reaped PID
//     cannot be reused by a new child between the reap and the lookup.
//
//   - A signal to a registered child is sent under the same mutex, and only
//     while the child is unreaped, so it can never reach a recycled PID.
//
//   - [Reaper.Adopt] registers a process the program did not start (a
//     daemon reparented to it) only under that mutex, and only when it is
//     then an unregistered child of the program that started at or after a
//     given start ([Proc.StartTicks]) and runs as a given uid; a refused
//     PID is never signalled. From then on it is a registered child like
//     any: its status is kept, it is signalled only while unreaped.
//
//   - What a KillGroup child left alive in its group when it exited is
//     logged by PID and command before the group is sent SIGKILL.
//
//   - Every child is started in its own process group (Setpgid), as a job is
//     under "set -m"; its process-group ID equals its PID.
//
//   - When mainstay is not PID 1, the reaper makes it a child subreaper before
//     the first child starts, so orphaned descendants are reparented to it and
//     reaped here.
//
//   - Exit statuses map to exit codes in one place, [Exit.Code]: N for exit
//     status N, 128+N for death by signal N. Failures to start map in
//     [StartFailureCode]: 127 not found, 126 not executable.
//
//   - The reaper never calls [exec.Cmd.Wait], not even to flush I/O: without
//     pidfds it would wait4 a PID that may already belong to another child.
//     Output to writers that are not files, and all prefixed output, goes
//     through pipes the reaper copies itself, one goroutine a pipe.
//
//   - A child's exit is its leader's reaped status: [Proc.Done] is closed
//     at the reap, whoever still holds its output. Output copying never
//     holds the exit up for long: once the leader is reaped, the pipes are
//     read until end of file or for at most the Spec's OutputWait
//     ([DefaultOutputWait], 100 ms), then closed, so a descendant that
//     keeps a pipe open (a setsid'd daemon) delays [Proc.Wait] by that
//     bound at most. Each process that still holds a pipe then is logged,
//     once per run, at INFO as "left running by NAME" with its pid and
//     command (found through its /proc/PID/fd links to the pipe's inode).
//     [KeepOutput] keeps the pipes open on purpose until
//     [Proc.CloseOutput] (main's output, read until the final sweep).
//
//   - Each run of a child with a Prefix has a prefixer of its own per pipe:
//     every line is written after the prefix, and the run's unfinished
//     last line is written, prefixed and ended by a newline, when its
//     pipe is closed, never glued to another run's output. The complete
//     lines of each read go out at once, in writes of at most PIPE_BUF
//     (4096) bytes of whole prefixed lines (a longer line alone in its own
//     write); a line longer than 64 KiB is split, a newline added after
//     each 64 KiB. Without a prefix, bytes are copied as they come.
//
// [Reaper.Sweep] ends the program's life: it refuses new children, sends
// SIGTERM and SIGCONT, then SIGKILL at the stop's deadline, to every
// remaining descendant, and returns when wait4 reports ECHILD, or
// [KillWait] after the deadline. Its SIGKILL timer runs from the deadline
// before any other work, each phase walks /proc once and signals each
// process once, and the SIGKILL pass is prepared before the deadline, so
// the deadline holds with thousands of leftovers. It names the first few
// processes it stops, by PID and command line. At the give-up it calls
// stuck in the kernel only a process it reads, by its PID, as still there,
// ours, not exited, in D state and not exiting; one that has begun to exit
// is reported as still exiting. As PID 1 it signals with kill(-1);
// otherwise it walks /proc and signals each descendant through a pidfd
// (kill(2) where pidfds are unavailable), because kill(-1) would reach
// processes that are not ours.
//
// [ReadStat] is the program's one reader of /proc/PID/stat (the sweep,
// the notify probe's ancestry check and "mainstay health" use it).
package reaper
