package plan

import (
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mainstay-dev/mainstay/readiness"
)

// Plan is one whole run of mainstay as a value: every child it will start,
// in the order of the lifecycle, and how each is waited for, kept up and
// stopped. The command line builds it; the lifecycle runs it and never
// changes it.
type Plan struct {
	// Sidecars, in the order given; those with Start=before run first,
	// the others once the helpers are done.
	Sidecars []*Sidecar

	// WaitFor are the dependency probes that must pass before anything
	// but the start=before sidecars starts, within WaitForTimeout.
	WaitFor        []readiness.Probe
	WaitForTimeout time.Duration
	// Before are the one-shot tasks run after WaitFor, before main.
	Before []Command

	Main Command
	// Ready are main's readiness probes, which must all pass within
	// ReadyTimeout (0: forever).
	Ready        []readiness.Probe
	ReadyTimeout time.Duration
	Probing      Probing

	// Helpers run in order once main is ready, then the programs of
	// HelpersDir; OnceMarker, when set, skips them all once they have
	// succeeded once.
	Helpers    []Command
	HelpersDir string
	OnceMarker string
	Tasks      Tasks

	// Crons are the scheduled entries: the --cron values in the order
	// given, then the --crontab's lines; named by [NameCrons]. Their
	// first runs fall due once main is ready and the helpers are done.
	Crons []*Cron

	// ReadyFile, when set, publishes the state for "mainstay health".
	ReadyFile string
	// Sources name where ReadyFile and OnceMarker came from (a flag, or
	// its variable with the value), for error lines.
	ReadyFileSource, OnceMarkerSource string

	// ControlSocket is where the control socket listens: a path, or ""
	// or "off" for none. At the default path (the CLI's default) a
	// failure is a warning; at another it is a usage error.
	// ControlSocketSource names where it came from, for that error.
	ControlSocket, ControlSocketSource string

	// Restart is the backoff between the tries of a task and the
	// restarts of a sidecar.
	Restart Backoff

	// StopSignal asks main to stop (it replaces SIGTERM when forwarded);
	// Grace is the budget of the whole stop; SignalGroup sends main's
	// signals to its process group.
	StopSignal  syscall.Signal
	Grace       time.Duration
	SignalGroup bool

	// User is --user: main, the tasks and the probes run as this user
	// (nil: mainstay's own).
	User *User
	// Env is the children's environment, computed once from mainstay's
	// own at start-up by [Environ]: without its MAINSTAY_* configuration
	// or its NOTIFY_SOCKET.
	Env []string
	// NotifySocket is mainstay's own $NOTIFY_SOCKET at start-up, to tell
	// the supervisor above when the container is ready ("" for none).
	NotifySocket string

	LogFormat, LogLevel string

	// Given says where each list flag was given: the flag itself, or its
	// variable (--ready → MAINSTAY_READY), for error lines.
	Given map[string]string
}

// Command is one child as the user wrote it.
type Command struct {
	// Source names where it was given, for error lines:
	// `--helper "migrate up"`, "main command".
	Source string
	// Line is the command as written; Argv, its words.
	Line string
	Argv []string
	// User runs it; nil: the plan's User.
	User *User
	// Env is KEY=VALUE to set over its environment ([Command.Environ]):
	// a sidecar's or a --cron's env=, or a crontab's KEY=VALUE lines
	// above the line, in order.
	Env []string
	// Dir is its working directory (dir=); "": mainstay's.
	Dir string
}

// Environ is the command's environment: env (the container's, as main
// gets it, with the user's HOME, USER and LOGNAME: [ChildEnv]) with the
// command's Env set over it, a later value of a key replacing an earlier
// one.
func (c *Command) Environ(env []string) []string {
	out := slices.Clone(env)
	for _, kv := range c.Env {
		out = setEnv(out, kv)
	}
	return out
}

// setCommandOption takes the options a sidecar and a --cron share: user=,
// env= (repeatable) and dir=.
func (c *Command) setCommandOption(key, v string) error {
	switch key {
	case "user":
		u, err := ParseUser(v)
		if err != nil {
			return err
		}
		c.User = u
		return nil
	case "dir":
		if v == "" {
			return errors.New("empty directory")
		}
		c.Dir = v
		return nil
	}
	k, _, ok := strings.Cut(v, "=")
	if !ok || k == "" || strings.ContainsRune(v, 0) {
		return errors.New("want env=KEY=VALUE")
	}
	c.Env = append(c.Env, v)
	return nil
}

// Probing is how probes are attempted: the first delay between two
// attempts, its cap (0: per kind), and the bound of one attempt.
type Probing struct {
	Interval, MaxInterval, AttemptTimeout time.Duration
}

// Tasks is how --before tasks and helpers run.
type Tasks struct {
	// Timeout bounds each task (0: none).
	Timeout time.Duration
	// OnFailure is "stop" or "continue".
	OnFailure string
	// Retries is how many times a failed task runs again.
	Retries int
	// Prefix is the --helper-prefix template ("{helper}" is the child's
	// name); empty: no prefix. It applies to sidecars too.
	Prefix string
}

// PrefixOf is the output prefix of the child named name: Prefix with
// "{helper}" replaced by the name.
func (t Tasks) PrefixOf(name string) string {
	return strings.ReplaceAll(t.Prefix, "{helper}", name)
}

// Backoff is the schedule of delays between tries: Delay, doubling up to
// MaxDelay, with jitter.
type Backoff struct {
	Delay, MaxDelay time.Duration
}

// ChildEnv is the environment of a child that runs as u (nil: as
// mainstay's own user): env, with u's HOME, USER and LOGNAME in place of
// mainstay's.
func ChildEnv(env []string, u *User) []string {
	if u == nil {
		return env
	}
	out := make([]string, 0, len(env)+len(u.Env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || k == "USER" || k == "LOGNAME" {
			continue
		}
		out = append(out, kv)
	}
	return append(out, u.Env...)
}

// Environ is the children's environment for the start-up environment
// environ: everything but the variables whose name starts with prefix_
// (mainstay's configuration is not theirs: a mainstay run by main must
// not inherit the outer one's helpers), and but NOTIFY_SOCKET (mainstay's
// own supervisor's: main gets mainstay's socket only with --ready notify,
// a sidecar its run's own only with ready=notify, helpers and probes
// never one).
func Environ(environ []string, prefix string) []string {
	out := []string{}
	for _, kv := range environ {
		if !strings.HasPrefix(kv, prefix+"_") && !strings.HasPrefix(kv, readiness.NotifyEnv+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// ShortNames names each child for log lines and output prefixes: given[i]
// when not empty, else the base name of its program, argv0s[i], followed
// by "#N" (its position among them, from 1) when several share it.
func ShortNames(argv0s, given []string) []string {
	count := map[string]int{}
	for i, a := range argv0s {
		if given == nil || given[i] == "" {
			count[filepath.Base(a)]++
		}
	}
	names := make([]string, len(argv0s))
	for i, a := range argv0s {
		if given != nil && given[i] != "" {
			names[i] = given[i]
			continue
		}
		names[i] = filepath.Base(a)
		if count[names[i]] > 1 {
			names[i] += "#" + strconv.Itoa(i+1)
		}
	}
	return names
}
