// Package helpers runs the user's helper tasks — migrations, seeding,
// cache warm-up — once main is ready. "Helpers" here always means these
// user-configured commands, never utility code.
//
// # Invariants
//
//   - Tasks run one at a time, in the order given, each in a process group
//     of its own, described by a [reaper.Spec] and started through the
//     Config's [reaper.Runner] (the program's reaper): only the reaper
//     makes and waits on children.
//   - A task that outlives its timeout, or whose context is cancelled (main
//     exited, or a signal aborted start-up), is killed with its whole
//     process group before Run returns.
//   - With a terminal, the running task is the terminal's foreground job, so
//     it can prompt and Ctrl-C reaches it, not mainstay. Without one, each
//     line it prints may carry a prefix naming it ([reaper.Spec]'s Prefix:
//     the reaper writes the lines, and ends each run's last line); main's
//     output never does. This package only chooses the prefix.
//   - A task's exit is its own: a background process it left holding its
//     output delays the next task by at most the reaper's
//     [reaper.DefaultOutputWait].
//   - A failed task (non-zero exit, signal, timeout, cannot start) ends the
//     run with a *[Error] under [Stop]; under [Continue] it is logged and the
//     next task runs.
package helpers
