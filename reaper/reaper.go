package reaper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrClosed is returned by [Reaper.Start] once [Reaper.Sweep] has begun.
	ErrClosed = errors.New("reaper: shutting down, no new processes")

	started atomic.Bool
)

// Reaper reaps every child of the program and hands each registered child's
// exit status to its owner. Its methods are safe for concurrent use.
type Reaper struct {
	log  *slog.Logger
	pid1 bool
	// subreaper: not PID 1, and PR_SET_CHILD_SUBREAPER succeeded.
	subreaper bool
	wake      chan struct{} // Start's wake-up for a reaper goroutine with no child to wait on

	mu       sync.Mutex
	procs    map[int]*Proc // registered children that have not exited
	groups   map[int]*Proc // those of procs whose Spec says KillGroup
	closed   bool          // Sweep has begun
	sleeping bool          // the reaper goroutine waits for wake
	reaped   chan struct{} // closed at the next reap, when Sweep waits for one
}

// Start makes the program a reaper: it becomes a child subreaper when it is
// not PID 1 (logging a warning when the kernel refuses), reaps whatever
// already exited, and starts the goroutine that reaps from then on. A
// program has at most one Reaper; a second call fails.
func Start(log *slog.Logger) (*Reaper, error) {
	if !started.CompareAndSwap(false, true) {
		return nil, errors.New("internal error: reaper started twice")
	}
	r := &Reaper{
		log:    log,
		pid1:   os.Getpid() == 1,
		wake:   make(chan struct{}, 1),
		procs:  make(map[int]*Proc),
		groups: make(map[int]*Proc),
	}
	if !r.pid1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Warn("not PID 1 and cannot become a child subreaper: orphans of main will not be reaped", "err", err)
		} else {
			r.subreaper = true
			log.Debug("not PID 1: running as a child subreaper", "pid", os.Getpid())
		}
	}
	r.drain()
	go r.reap()
	return r, nil
}

// reap is the reaper goroutine. It sleeps in waitid(WNOWAIT), which
// returns as soon as any child changes state without reaping it, and then
// drains: one thread wake-up per burst of exits, where a SIGCHLD
// subscription costs the Go runtime's signal path on top (the signal
// thread, then a channel hand-off) for every one.
func (r *Reaper) reap() {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WSTOPPED|unix.WCONTINUED|unix.WNOWAIT, nil)
		switch err {
		case nil:
			r.drain()
		case unix.EINTR:
		case unix.ECHILD:
			r.idle()
		default:
			r.log.Error("internal error: waitid; reaping on SIGCHLD from now on", "err", err)
			chld := make(chan os.Signal, 1)
			signal.Notify(chld, unix.SIGCHLD)
			for range chld {
				r.drain()
			}
		}
	}
}

// idle waits while the program has no child, so waitid has nothing to
// block on, until Start starts one. Processes may still become children
// meanwhile: as PID 1, those that docker exec started are reparented to
// it when their parent exits. Their SIGCHLD is heard while idle.
func (r *Reaper) idle() {
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, unix.SIGCHLD)
	defer signal.Stop(chld)
	// A child that became ours before the subscription is reaped here.
	for r.drain() {
		r.mu.Lock()
		if len(r.procs) > 0 { // started since drain's wait4
			r.mu.Unlock()
			return
		}
		r.sleeping = true
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-chld:
		}
		r.mu.Lock()
		r.sleeping = false
		r.mu.Unlock()
	}
}

// PID1 reports whether the program is PID 1 of its PID namespace.
func (r *Reaper) PID1() bool { return r.pid1 }

// Proc is a child started by [Reaper.Start].
type Proc struct {
	r     *Reaper
	cmd   *exec.Cmd // nil for an adopted child
	pid   int
	name  string // for log lines: the Spec's Name, or Argv[0]
	start uint64 // its Stat.Start
	// leader: it leads its process group (always, unless adopted).
	leader bool
	done   chan struct{} // closed when the child has been reaped
	out    *output

	// Guarded by r.mu.
	stopped bool
	exited  bool
	status  unix.WaitStatus

	release sync.Once
}

// Start starts the child that s describes, in a process group of its own,
// and registers it, so its exit status is kept for [Proc.Wait]. It is the
// only way the program starts a child, and the only code that makes an
// [exec.Cmd]. Start returns [ErrClosed] once [Reaper.Sweep] has begun, and
// the start error (program not found, not executable, out of resources)
// when the child cannot be started.
//
// Output to writers that are not files, or that gets a prefix, is fed
// through pipes that Start copies itself (see [Spec]), so that
// [exec.Cmd.Wait] is never needed.
func (r *Reaper) Start(s Spec) (*Proc, error) {
	if len(s.Argv) == 0 {
		return nil, errNoArgv
	}
	// A program not found in PATH leaves cmd.Err, which cmd.Start returns.
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Env = s.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would be mainstay's own
	}
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.Credential}
	if s.Terminal != nil {
		cmd.SysProcAttr.Foreground = true
		cmd.SysProcAttr.Ctty = int(s.Terminal.Fd())
	}
	if s.Stdin != nil {
		cmd.Stdin = s.Stdin
	}
	out, err := redirect(cmd, s, r.log)
	if err != nil {
		return nil, err
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		out.abort()
		return nil, ErrClosed
	}
	if err := cmd.Start(); err != nil {
		out.abort()
		return nil, err
	}
	out.start()
	p := &Proc{r: r, cmd: cmd, pid: cmd.Process.Pid, name: out.name, leader: true, done: make(chan struct{}), out: out}
	// It cannot have been reaped: that takes r.mu.
	if st, err := ReadStat(p.pid); err == nil {
		p.start = st.Start
	}
	r.procs[p.pid] = p
	if s.KillGroup {
		r.groups[p.pid] = p
	}
	if r.sleeping {
		r.sleeping = false
		r.wake <- struct{}{} // cannot block: only a sleeping reaper takes it, once
	}
	return p, nil
}

// Run starts the child that s describes, waits for it to exit and returns
// how it ended. When ctx is done first, the child's whole process group is
// killed (SIGKILL), Run still waits for the child, and the Exit says
// [Exit.Cancelled]. The error is Start's.
func (r *Reaper) Run(ctx context.Context, s Spec) (Exit, error) {
	p, err := r.Start(s)
	if err != nil {
		return Exit{}, err
	}
	if s.Started != nil {
		s.Started(p.PID())
	}
	select {
	case <-p.done:
		return p.Wait(), nil
	case <-ctx.Done():
	}
	// The child may have exited meanwhile: then it was not killed.
	r.mu.Lock()
	killed := !p.exited
	if killed {
		_ = unix.Kill(-p.pid, unix.SIGKILL)
	}
	r.mu.Unlock()
	exit := p.Wait()
	exit.cancelled = killed
	return exit, nil
}

// drain reaps every child that has changed state, and reports whether the
// program has no children left at all (wait4 said ECHILD).
func (r *Reaper) drain() (childless bool) {
	for {
		var ws unix.WaitStatus
		r.mu.Lock()
		r.killGroups()
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WUNTRACED|unix.WCONTINUED, nil)
		if err == unix.EINTR {
			r.mu.Unlock()
			continue
		}
		if err != nil || pid <= 0 {
			r.mu.Unlock()
			if err != nil && err != unix.ECHILD {
				r.log.Error("internal error: wait4", "err", err)
			}
			return err == unix.ECHILD
		}
		if r.reaped != nil {
			close(r.reaped)
			r.reaped = nil
		}
		p := r.procs[pid]
		var ended *Proc // p, when this was its exit
		if p != nil {
			switch {
			case ws.Stopped():
				p.stopped = true
			case ws.Continued():
				p.stopped = false
			default:
				if r.groups[pid] != nil {
					// It exited between killGroups' peek and this wait4.
					// Its group ID stays in use while any member lives
					// (the kernel keeps it), and no child of ours can
					// start while r.mu is held.
					r.killGroup(p)
				}
				delete(r.procs, pid)
				delete(r.groups, pid)
				p.exited, p.stopped, p.status = true, false, ws
				close(p.done)
				ended = p
			}
		}
		r.mu.Unlock()
		if ended != nil {
			ended.out.exited() // the bound on its output runs from now
		}
		if p == nil && (ws.Exited() || ws.Signaled()) {
			r.log.Debug("reaped orphan", "pid", pid, "exit_code", Exit{status: ws}.Code())
		}
	}
}

// nextReap returns a channel that is closed when drain next reaps or sees
// a child change state.
func (r *Reaper) nextReap() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reaped == nil {
		r.reaped = make(chan struct{})
	}
	return r.reaped
}

// killGroups sends SIGKILL to the process group of every KillGroup child
// that has exited but is not reaped yet, logging what it ends. The caller
// holds r.mu; peeking with WNOWAIT leaves the zombie, and with it the
// group ID, in place.
func (r *Reaper) killGroups() {
	for pid, p := range r.groups {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == nil && info.Signo == int32(unix.SIGCHLD) {
			delete(r.groups, pid) // killed once; the reap follows
			r.killGroup(p)
		}
	}
}

// PID is the child's process ID, which is also its process-group ID.
func (p *Proc) PID() int { return p.pid }

// Done is closed once the child has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait blocks until the child has exited and returns how. It also waits
// for the copying of the child's output to end, which is at most the
// Spec's OutputWait after the exit (not at all with [KeepOutput]), and
// releases the process handle. It may be called any number of times, from
// any goroutine.
//
// It never calls [exec.Cmd.Wait]: without pidfds that would wait4 the PID,
// which by then may belong to another of the program's children.
func (p *Proc) Wait() Exit {
	<-p.done
	p.release.Do(func() {
		if p.out.wait != KeepOutput {
			<-p.out.done
		}
		if p.cmd != nil {
			_ = p.cmd.Process.Release()
		}
	})
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	return Exit{status: p.status}
}

// CloseOutput ends the copying of the child's output: what comes through
// the pipes is still copied for up to wait, then they are closed, an
// unfinished last line is written (after the prefix, with a newline), and
// whatever still holds a pipe is logged as left running. It returns once
// that is done; at once when the child has no output pipes. It is how
// output kept open with [KeepOutput] ends, and may also end a copy before
// its OutputWait.
func (p *Proc) CloseOutput(wait time.Duration) {
	p.out.closeBy(time.Now().Add(wait))
	<-p.out.done
}

// Stopped reports whether the child is stopped by a job-control signal.
// It reaps first, so a stop that the kernel has reported but the reaper
// goroutine has not drained yet is seen too.
func (p *Proc) Stopped() bool {
	p.r.drain()
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	return p.stopped
}

// Signal sends sig to the child. It does nothing, and returns nil, once the
// child has been reaped: its PID may belong to another process by then.
func (p *Proc) Signal(sig syscall.Signal) error { return p.kill(p.pid, sig) }

// SignalGroup sends sig to the child's process group, under the same rule
// as [Proc.Signal]: only while the group leader is unreaped, so the group ID
// cannot have been reused. An adopted child that does not lead its group
// ([Reaper.Adopt]) is sent sig alone: its group is not its own.
func (p *Proc) SignalGroup(sig syscall.Signal) error {
	if !p.leader {
		return p.kill(p.pid, sig)
	}
	return p.kill(-p.pid, sig)
}

func (p *Proc) kill(target int, sig syscall.Signal) error {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	if p.exited {
		return nil
	}
	if err := unix.Kill(target, sig); err != nil && err != unix.ESRCH {
		return fmt.Errorf("send %s to %d: %w", unix.SignalName(sig), target, err)
	}
	return nil
}
