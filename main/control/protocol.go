package control

import (
	"fmt"
	"strings"
	"time"

	"github.com/mainstay-dev/mainstay/main/registry"
)

// Version is the protocol version: every request and answer carries it as
// "v". A server answers a request of another version with an error of
// kind [KindVersion].
const Version = 1

// DefaultPath is where the server listens and the client dials unless
// told otherwise (--control-socket, MAINSTAY_CONTROL_SOCKET).
const DefaultPath = "/run/mainstay/control.sock"

// Limits of the server, documented in the package comment and in
// docs/operating.md.
const (
	// MaxRequest is the longest request line, its newline included.
	MaxRequest = 4096
	// ReadTimeout is how long the server waits for a complete request
	// line, the first one and each next one on a connection.
	ReadTimeout = 5 * time.Second
	// MaxConns is how many connections the server serves at once; the
	// next one gets a [KindBusy] answer and is closed.
	MaxConns = 8
	// MaxChanging is how many restart, stop, start and signal requests
	// are in the handler at once (a restart can wait for readiness);
	// the next one gets a [KindBusy] answer, so that status and health
	// always have connections left.
	MaxChanging = MaxConns / 2
)

// Operations: the "op" of a request.
const (
	OpStatus  = "status"
	OpHealth  = "health"
	OpRestart = "restart"
	OpStop    = "stop"
	OpStart   = "start"
	OpSignal  = "signal"
)

// changes reports whether op changes something, and so needs a privileged
// caller.
func changes(op string) bool {
	return op == OpRestart || op == OpStop || op == OpStart || op == OpSignal
}

// Level is a health level: what "healthy" means to the asker.
type Level string

const (
	// LevelReady: main ready, helpers done, every essential sidecar
	// running and ready ([Status.Ready]).
	LevelReady Level = "ready"
	// LevelAlive: the lifecycle is starting, ready or restarting
	// something; not alive only once mainstay is stopping (or gone).
	LevelAlive Level = "alive"
)

// Phases of the lifecycle, as [Status.Phase] reports them.
const (
	PhaseStarting   = "starting"
	PhaseReady      = "ready"
	PhaseRestarting = "restarting" // started up; an essential sidecar is restarting
	PhaseStopping   = "stopping"
)

// Request is one request line. Fields an operation does not take must be
// left out; unknown fields are an error.
type Request struct {
	V  int    `json:"v"`
	Op string `json:"op"`
	// Names: the children, for restart, stop, start and signal (at least
	// one) and status (none: every child).
	Names []string `json:"names,omitempty"`
	// Signal, for signal: a name with or without SIG ("HUP", "SIGHUP")
	// or a number.
	Signal string `json:"signal,omitempty"`
	// Level, for health: alive or ready (the default).
	Level Level `json:"level,omitempty"`
}

// Response is one answer line. OK is false exactly when Error is set.
type Response struct {
	V      int     `json:"v"`
	OK     bool    `json:"ok"`
	Error  *Error  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"` // for status
	Health *Health `json:"health,omitempty"` // for health
}

// Status is the answer to status: the shape of "mainstay status --json",
// stable for scripts (fields may be added, none removed or changed).
type Status struct {
	// Phase is one of the Phase constants.
	Phase string `json:"phase"`
	// Ready is the ready health level.
	Ready    bool    `json:"ready"`
	Children []Child `json:"children"`
}

// Child is one child in a [Status]. Every field is always present; null
// means "does not apply".
type Child struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`  // main, sidecar, helper, before, probe, cron
	State string `json:"state"` // pending, starting, running, backoff, exited, gave-up, stopped, scheduled
	PID   int    `json:"pid"`   // 0 when not running
	// Started is the start of the current run, or of the last one.
	Started *time.Time `json:"started"`
	// Uptime is the current run's age in whole seconds; the server
	// computes it when it answers, null when not running.
	Uptime   *int64 `json:"uptime_seconds"`
	Restarts int    `json:"restarts"` // restarts in a row
	LastExit *Exit  `json:"last_exit"`
	// NextRestart is when a child in backoff starts again.
	NextRestart *time.Time `json:"next_restart"`
	// NextDue is when a cron entry's next run falls due; null for other
	// kinds, before main is ready and once the stop began.
	NextDue *time.Time `json:"next_due"`
	// Command is the child's argv, shown only to a caller that may
	// change things (uid 0 or mainstay's own); null for anyone else.
	// The handler gives it with the passwords of probe URLs redacted.
	Command []string `json:"command"`
}

// Exit is how a run ended.
type Exit struct {
	Code   int       `json:"code"`   // 128+N for signal N
	Status string    `json:"status"` // "exit status 1", "killed by SIGKILL"
	At     time.Time `json:"at"`
}

// Health is the answer to health.
type Health struct {
	Level   Level  `json:"level"`
	Healthy bool   `json:"healthy"`
	Phase   string `json:"phase"`
}

// ChildFrom is the [Child] of a registry entry; the caller adds Command.
func ChildFrom(i registry.Info) Child {
	c := Child{Name: i.Name, Kind: string(i.Kind), State: string(i.State), PID: i.PID, Restarts: i.Restarts}
	if !i.Started.IsZero() {
		t := i.Started
		c.Started = &t
	}
	if i.LastExit != nil {
		c.LastExit = &Exit{Code: i.LastExit.Code, Status: i.LastExit.Status, At: i.LastExit.At}
	}
	if !i.NextRestart.IsZero() && i.State == registry.Backoff {
		t := i.NextRestart
		c.NextRestart = &t
	}
	if !i.NextDue.IsZero() {
		t := i.NextDue
		c.NextDue = &t
	}
	return c
}

// healthy is the health level's verdict on st. Not alive only once
// stopping: a non-essential sidecar that gave up changes neither level.
func healthy(level Level, st Status) bool {
	if level == LevelAlive {
		return st.Phase != PhaseStopping
	}
	return st.Ready
}

// Kinds of [Error]: what the client maps to an exit status, and scripts
// may branch on.
const (
	// KindRefused: not now, or never for this child ("starting",
	// "stopping", main's restart).
	KindRefused = "refused"
	// KindUnknown: a name that is not a child's; the message lists the
	// names there are.
	KindUnknown = "unknown-name"
	// KindFailed: the operation was tried and failed (not ready again in
	// time, the signal could not be sent).
	KindFailed = "failed"
	// KindDenied: the caller's uid may only ask for status and health.
	KindDenied = "denied"
	// KindBadRequest: not a request (not JSON, too long, no request in
	// time, a field missing or out of place); the connection is closed.
	KindBadRequest = "bad-request"
	// KindVersion: a protocol version this server does not speak; the
	// connection is closed.
	KindVersion = "version"
	// KindBusy: too many connections or changing requests at once; try
	// again.
	KindBusy = "busy"
)

// Error is a request's failure, as the handler returns it and as it
// travels in [Response.Error]. A handler's error of another type is sent
// as [KindFailed] with its message.
type Error struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Refusals the lifecycle returns; their messages are the ones the issue
// fixes. Compare with [errors.Is] (by identity) on the server side only:
// the client gets new values.
var (
	ErrStarting = &Error{Kind: KindRefused, Message: "starting: restart, stop and start are taken once main is ready and the helpers are done"}
	ErrStopping = &Error{Kind: KindRefused, Message: "stopping"}
	ErrMain     = &Error{Kind: KindRefused, Message: "main's lifetime is the container's: use docker restart"}
)

// Refused is a refusal saying why.
func Refused(format string, args ...any) *Error {
	return &Error{Kind: KindRefused, Message: fmt.Sprintf(format, args...)}
}

// UnknownName is the answer to a name that is not a child's: it names the
// children there are (known, in order).
func UnknownName(name string, known []string) *Error {
	return &Error{Kind: KindUnknown, Message: fmt.Sprintf("no child named %q; the children are: %s", name, strings.Join(known, ", "))}
}

func failure(kind, format string, args ...any) *Response {
	return &Response{V: Version, Error: &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}}
}
