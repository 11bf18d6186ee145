package mainproc

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/reaper"
)

// Daemon says how to find the daemon a sidecar's start command leaves
// behind (pidfile=): the start command forks the server away and exits 0,
// and the server's PID is read from a file.
type Daemon struct {
	// Path is the pidfile, for log lines.
	Path string
	// Clear removes the pidfile; it is called before each start, so a
	// file an earlier run left is never read.
	Clear func() error
	// Read returns the PID the pidfile names; an error while it is not
	// there yet, or does not hold a PID.
	Read func() (int, error)
	// UID is the user the daemon must run as.
	UID int
	// Timeout bounds the search for a PID that is believed, from the
	// start command's exit 0 (the sidecar's ready timeout); 0: none.
	Timeout time.Duration
}

// errNotAdopted fails a daemon's start: the start command exited 0, but
// no PID the pidfile named was believed in time.
var errNotAdopted = errors.New("no daemon adopted")

// sidecarRun is one run of a sidecar: a program it started, or a daemon's start
// command and then the daemon it left.
type sidecarRun interface {
	// PID is the run's process: the program's; the start command's, then
	// the daemon's once adopted.
	PID() int
	// Up is closed once the process whose readiness counts is there:
	// at once, or once the daemon is adopted.
	Up() <-chan struct{}
	Done() <-chan struct{}
	Wait() reaper.Exit
	// Signal sends sig to the run's process group; for a daemon, to the
	// start command's group while it runs, then to the daemon (and its
	// group when it leads one).
	Signal(sig syscall.Signal) error
	// Stop is Signal for a stop signal (and the SIGCONT and SIGKILL that
	// follow it): a daemon not adopted yet is no longer looked for, and
	// one adopted meanwhile gets the signal.
	Stop(sig syscall.Signal) error
}

// program is a run of a sidecar that stays in the foreground.
type program struct{ *reaper.Proc }

var upAlready = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (p program) Up() <-chan struct{}             { return upAlready }
func (p program) Signal(sig syscall.Signal) error { return p.SignalGroup(sig) }
func (p program) Stop(sig syscall.Signal) error   { return p.SignalGroup(sig) }

// daemonRun is a run of a pidfile= sidecar. Its goroutine, follow, waits
// for the start command; after its exit 0, reads the pidfile until a PID
// in it is believed and adopted by the reaper (or the time is up, or the
// run is stopped); then waits for the daemon. The run's exit is the
// daemon's; a start command that failed gives its own; a daemon never
// adopted gives exit status 1. The start command's output pipes stay
// open for the daemon until it is reaped; what a failed start left in the
// start command's process group is killed and named.
type daemonRun struct {
	r     *reaper.Reaper
	start *reaper.Proc
	d     Daemon
	name  string
	log   *slog.Logger

	up, done chan struct{}
	quit     chan struct{} // closed by a Signal before the daemon is found
	quitOnce sync.Once

	mu     sync.Mutex
	daemon *reaper.Proc
	exit   reaper.Exit
	stop   syscall.Signal // the last Stop's signal but SIGCONT, before the daemon was adopted
}

func startDaemon(r *reaper.Reaper, start *reaper.Proc, d Daemon, name string, log *slog.Logger) *daemonRun {
	dr := &daemonRun{r: r, start: start, d: d, name: name, log: log, up: make(chan struct{}), done: make(chan struct{}), quit: make(chan struct{})}
	go dr.follow()
	return dr
}

func (dr *daemonRun) PID() int {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	if dr.daemon != nil {
		return dr.daemon.PID()
	}
	return dr.start.PID()
}

func (dr *daemonRun) Up() <-chan struct{}   { return dr.up }
func (dr *daemonRun) Done() <-chan struct{} { return dr.done }

func (dr *daemonRun) Wait() reaper.Exit {
	<-dr.done
	dr.mu.Lock()
	defer dr.mu.Unlock()
	return dr.exit
}

func (dr *daemonRun) Signal(sig syscall.Signal) error {
	dr.mu.Lock()
	daemon := dr.daemon
	dr.mu.Unlock()
	if daemon != nil {
		return daemon.SignalGroup(sig)
	}
	select {
	case <-dr.start.Done():
		return errNotAdoptedYet
	default:
		return dr.start.SignalGroup(sig)
	}
}

// errNotAdoptedYet answers a signal between the start command's exit and
// the daemon's adoption: there is no process of the run to send it to.
var errNotAdoptedYet = fmt.Errorf("%w: its daemon is not adopted yet", ErrNotRunning)

func (dr *daemonRun) Stop(sig syscall.Signal) error {
	dr.mu.Lock()
	daemon := dr.daemon
	if daemon == nil {
		if sig != syscall.SIGCONT {
			dr.stop = sig
		}
		dr.quitOnce.Do(func() { close(dr.quit) })
	}
	dr.mu.Unlock()
	if daemon != nil {
		return daemon.SignalGroup(sig)
	}
	return dr.start.SignalGroup(sig)
}

func (dr *daemonRun) follow() {
	defer close(dr.done)
	exit := dr.start.Wait()
	if !exit.Success() {
		dr.log.Warn("sidecar's start command failed", "pid", dr.start.PID(), "exit_code", exit.Code(), "status", exit.String())
		dr.end(exit, "its start command failed")
		return
	}
	daemon, err := dr.find()
	if daemon == nil {
		if err == errNotAdopted {
			exit = reaper.ExitedWith(1)
		}
		dr.end(exit, "no daemon was adopted")
		return
	}
	dr.mu.Lock()
	dr.daemon = daemon
	stop := dr.stop
	dr.mu.Unlock()
	if stop != 0 { // a stop came while it was being adopted
		_ = daemon.SignalGroup(stop)
		_ = daemon.SignalGroup(syscall.SIGCONT)
	}
	close(dr.up)
	<-daemon.Done()
	exit = daemon.Wait()
	dr.end(exit, "")
}

// end ends the run with exit. Unless the daemon ran (why is empty), what
// the start left in its process group is killed and named, as the end of
// a sidecar's run kills its group.
func (dr *daemonRun) end(exit reaper.Exit, why string) {
	if why != "" {
		dr.start.KillLeft(why)
	}
	dr.start.CloseOutput(reaper.DefaultOutputWait)
	dr.mu.Lock()
	dr.exit = exit
	dr.mu.Unlock()
}

// find reads the pidfile, with growing delays (10 ms to 1 s: daemons
// write it late), until a PID in it is adopted, the time is up
// (errNotAdopted), or the run is stopped (a nil error). Each new reason to
// wait is logged once.
func (dr *daemonRun) find() (*reaper.Proc, error) {
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(10*time.Millisecond), backoff.WithMaxInterval(time.Second), backoff.WithMaxElapsedTime(0))
	var timeout <-chan time.Time
	if dr.d.Timeout > 0 {
		t := time.NewTimer(dr.d.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	trust := reaper.Trust{Name: "sidecar " + dr.name, After: dr.start.StartTicks(), UID: dr.d.UID}
	var last string
	gone := 0 // the PID read last, when no process had it
	for {
		pid, err := dr.d.Read()
		var p *reaper.Proc
		if err == nil {
			p, err = dr.r.Adopt(pid, trust)
		}
		var refused *reaper.RefusedError
		switch {
		case errors.As(err, &refused) && refused.Gone && gone == pid:
			// Read twice (so not a half-written number), and the process
			// is gone: the daemon exited before it could be adopted, its
			// status reaped as an orphan's. No use waiting for the timeout.
			dr.log.Warn("sidecar's daemon exited before it was adopted: its start failed", "pid", pid, "pidfile", dr.d.Path)
			return nil, errNotAdopted
		case errors.As(err, &refused) && refused.Gone:
			gone = pid
		default:
			gone = 0
		}
		switch {
		case err == nil:
			dr.log.Info("daemon adopted", "pid", pid, "command", commandOf(pid), "pidfile", dr.d.Path)
			return p, nil
		case err == reaper.ErrClosed:
			return nil, nil
		case err.Error() != last:
			last = err.Error()
			if refused != nil && !refused.Gone {
				dr.log.Warn("pidfile names a process mainstay does not adopt; still waiting for the daemon's", "pidfile", dr.d.Path, "refused", last)
			} else {
				dr.log.Debug("waiting for the daemon's pidfile", "pidfile", dr.d.Path, "reason", last)
			}
		}
		t := time.NewTimer(b.NextBackOff())
		select {
		case <-t.C:
		case <-dr.quit:
			t.Stop()
			return nil, nil
		case <-timeout:
			t.Stop()
			dr.log.Warn("sidecar's daemon not adopted: its start failed", "pidfile", dr.d.Path, "timeout", dr.d.Timeout, "last", last)
			return nil, errNotAdopted
		}
	}
}

// commandOf is pid's command line, for a log line.
func commandOf(pid int) string {
	st, err := reaper.ReadStat(pid)
	if err != nil {
		return fmt.Sprint(pid)
	}
	return st.Command()
}
