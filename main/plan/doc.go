// Package plan is one run of mainstay as a value: the [Plan] that the
// command line builds and the lifecycle runs. It also holds what turns the
// user's words into that value and checks it before anything starts:
// sidecar KEY=VALUE options ([ParseSidecar]), scheduled entries
// ([ParseCron], [ParseCrontab], [NameCrons]), users ([ParseUser]), probe
// specs ([AddReady], [AddWaitFor]) and the programs every child will run
// ([Plan.CheckPrograms]).
//
// # Invariants
//
//   - A Plan is data: building one starts nothing, opens nothing but
//     what it reads (the user database, a --crontab) and changes no
//     process state (no environment variable is set or unset, nothing is
//     written). The lifecycle never changes a Plan.
//   - Every child is described once, as a [Command] (its words, where it
//     was given, the user it runs as); the lifecycle turns each into the
//     reaper's spawn description in one place.
//   - [Plan.Env] is computed once, from the start-up environment: the
//     children never see MAINSTAY_* or mainstay's own NOTIFY_SOCKET.
//   - Errors name where the bad value was given (a flag, or its
//     variable) and the value, in one line.
//   - Names: a child without a name= gets its program's base name, with
//     #N (its position) when several share it ([ShortNames], the one
//     namer); two sidecars with one name are refused, and so are two
//     cron entries, or one named main or as a sidecar.
//
// It depends on readiness (probes are parsed once, here), mainproc
// (restart policies, signal names) and cron (schedules are parsed once,
// here), never on the lifecycle or kong.
package plan
