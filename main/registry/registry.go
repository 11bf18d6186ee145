// Package registry is the list of mainstay's named children: every process
// the lifecycle starts (main, a sidecar, a helper, a --before task, an
// exec probe, a scheduled entry's runs) is entered once under a name,
// with its kind, and each entry follows its child's life: state, PID,
// start time, restarts, last exit, next restart, next due time. It is
// what an operator's view of a running container reads (a status
// command, scheduled jobs' next due times).
//
// # Invariants
//
//   - A name is entered once; [Registry.Add] of a name already there
//     returns the existing entry, so a restarted child keeps its history.
//   - An entry is only changed by the owner of its child (the goroutine
//     that starts and waits for it), through its methods; readers get
//     copies ([Registry.List], [Child.Info]), never a pointer into the
//     state. Every method is safe for concurrent use.
//   - The registry holds no process handle: it can neither signal nor
//     wait; it only records what the owners report.
package registry

import (
	"sync"
	"time"

	"github.com/mainstay-dev/mainstay/reaper"
)

// Kind is what a child is to the lifecycle.
type Kind string

const (
	Main    Kind = "main"
	Sidecar Kind = "sidecar"
	Helper  Kind = "helper"
	Before  Kind = "before"
	Probe   Kind = "probe"
	// Cron is a --cron or --crontab entry: one entry for all its runs,
	// each run's start and exit recorded in turn.
	Cron Kind = "cron"
)

// State is where a child is in its life. Kinds use the states that apply
// to them: a helper never restarts, main never backs off.
type State string

const (
	// Pending: entered, not started yet.
	Pending State = "pending"
	// Starting: running, not ready yet (probes, ready=).
	Starting State = "starting"
	// Running: running; for kinds with readiness, ready.
	Running State = "running"
	// Backoff: exited, waiting to be restarted at Info.NextRestart.
	Backoff State = "backoff"
	// Exited: ended on its own and will not run again (a finished task,
	// a sidecar whose policy does not restart it).
	Exited State = "exited"
	// GaveUp: failed with its retries used up.
	GaveUp State = "gave-up"
	// Stopped: ended because it was asked to.
	Stopped State = "stopped"
	// Scheduled: a cron entry with no run going, waiting for its next
	// run at Info.NextDue.
	Scheduled State = "scheduled"
)

// Exit is how a run of a child ended.
type Exit struct {
	// Code is the exit code (128+N for signal N); Status says it in
	// words ("exit status 1", "killed by SIGKILL").
	Code   int
	Status string
	At     time.Time
}

// Info is a copy of one child's entry.
type Info struct {
	Name     string
	Kind     Kind
	State    State
	PID      int       // 0 when not running
	Started  time.Time // start of the current (or last) run
	Restarts int       // restarts in a row
	LastExit *Exit     // nil until a run has ended
	// NextRestart is when a child in Backoff starts again.
	NextRestart time.Time
	// NextDue is when a cron entry's next run falls due: the zero time
	// before its schedule starts (main not ready yet), once the stop
	// began, and for a schedule that never falls due again.
	NextDue time.Time
}

// Registry is the list of named children, in the order they were entered.
type Registry struct {
	mu     sync.Mutex
	list   []*Child
	byName map[string]*Child
}

// New returns an empty registry.
func New() *Registry { return &Registry{byName: map[string]*Child{}} }

// Add enters a child, pending, or returns the entry already there under
// name.
func (r *Registry) Add(name string, kind Kind) *Child {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.byName[name]; c != nil {
		return c
	}
	c := &Child{info: Info{Name: name, Kind: kind, State: Pending}}
	r.list = append(r.list, c)
	r.byName[name] = c
	return c
}

// List returns a copy of every entry, in the order entered.
func (r *Registry) List() []Info {
	r.mu.Lock()
	list := append([]*Child(nil), r.list...)
	r.mu.Unlock()
	out := make([]Info, len(list))
	for i, c := range list {
		out[i] = c.Info()
	}
	return out
}

// Get returns the entry named name, or nil.
func (r *Registry) Get(name string) *Child {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byName[name]
}

// Child is one entry. A nil *Child records nothing, so code that runs a
// child need not know whether it is registered.
type Child struct {
	mu   sync.Mutex
	info Info
}

// Info returns a copy of the entry.
func (c *Child) Info() Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.info
	if i.LastExit != nil {
		e := *i.LastExit
		i.LastExit = &e
	}
	return i
}

// Started records a run that started at at as pid, in state (Starting
// while it has readiness to pass, else Running).
func (c *Child) Started(pid int, at time.Time, state State) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.info.PID, c.info.Started, c.info.State, c.info.NextRestart = pid, at, state, time.Time{}
}

// Exited records how the current run ended, and the state the child is
// in now.
func (c *Child) Exited(e reaper.Exit, at time.Time, state State) {
	if c == nil {
		return
	}
	x := &Exit{Code: e.Code(), Status: e.String(), At: at}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.info.PID, c.info.LastExit, c.info.State = 0, x, state
}

// Set changes the state alone.
func (c *Child) Set(state State) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.info.State = state
}

// Backoff records that the child waits until next to restart, after
// restarts restarts in a row.
func (c *Child) Backoff(next time.Time, restarts int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.info.State, c.info.NextRestart, c.info.Restarts = Backoff, next, restarts
}

// Due records when the cron entry's next run falls due (the zero time:
// none).
func (c *Child) Due(next time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.info.NextDue = next
}

// ResetRestarts sets the restarts in a row to 0: an operator started the
// child again.
func (c *Child) ResetRestarts() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.info.Restarts = 0
}
