// Package lifecycle runs a [plan.Plan]: mainstay's whole life as one
// function, [Run], from the first sidecar to the last leftover swept, and
// how it ended, an [Outcome].
//
// # Invariants
//
//   - [Run] reads top to bottom in the order of the lifecycle: sidecars
//     (start=before), --wait-for, --before tasks, main, --ready, helpers,
//     sidecars (start=after), the scheduled entries' start, the
//     foreground, the stop. Every early end is a return of life.stop
//     with its cause.
//   - life.stop is the only code that stops mainstay's children: it says
//     why (before main is signalled, when main's end is not the cause),
//     halts the scheduler (no scheduled run starts from then on, nor once
//     main was asked to stop), stops main and waits for it, sends the
//     running scheduled runs SIGTERM, stops the sidecars in the reverse of
//     their start order, waits for the scheduled runs, then sweeps every
//     leftover, all by the one --grace deadline, counted from main's first
//     stop signal (or from now, when main exited on its own or never
//     started).
//   - A scheduled run (--cron, --crontab) never decides the outcome: a
//     failed, timed-out or unstartable run is logged, and the container
//     goes on.
//   - [Outcome.Code] is the only place that maps how the run ended to an
//     exit code, --help (0) and bad usage (2) included; the command calls
//     os.Exit with it and nothing else exits.
//   - Every child the lifecycle starts is entered in the run's
//     [registry.Registry] under its name and kind; its owner (main's
//     goroutine, a sidecar's supervisor, the helper runner, the
//     scheduled entries' crons) is the only writer of its entry.
//   - The state files (--ready-file, --once-marker) are opened through
//     their directory, held open from start-up, with *at calls that never
//     follow a symlink in the last component; "starting" is published
//     before the first child starts, "stopping" as soon as main is asked
//     to stop, and both files are removed when Run returns.
//   - One reaper per process ([reaper.Start] refuses a second): Run is
//     called once per process.
package lifecycle
