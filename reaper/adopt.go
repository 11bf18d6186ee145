package reaper

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Trust is what a process must be for [Reaper.Adopt] to take it.
type Trust struct {
	// Name names the adopted child in log lines, as [Spec.Name] does.
	Name string
	// After is the earliest start it may have, in clock ticks after boot
	// (a [Stat.Start]): the start command's, so that a PID left in a
	// stale file by an earlier run, or one of a process that was there
	// before, is refused.
	After uint64
	// UID is the user it must run as (its real and effective uid).
	UID int
}

// RefusedError is why [Reaper.Adopt] did not take a process.
type RefusedError struct {
	PID    int
	Reason string
	// Gone: no process has that PID (any more).
	Gone bool
}

func (e *RefusedError) Error() string { return fmt.Sprintf("pid %d %s", e.PID, e.Reason) }

// Adopt registers pid, a process that became the program's child when its
// parent exited (a daemon, reparented to PID 1 or the subreaper), as
// [Reaper.Start] registers a child it starts: its exit status is kept for
// [Proc.Wait] rather than discarded like an unknown orphan's, and it is
// signalled only while unreaped. The process is believed only if, read
// under the registry mutex (so it cannot be reaped meanwhile), it is a
// child of the program that no registered child owns (never main, never
// another sidecar), started at or after t.After, and runs as t.UID; any
// other PID gets a *[RefusedError] and is never signalled. A process that
// leads its own process group gets the group killed with it, as
// [Spec.KillGroup] says. The adopted child has no output of its own: it
// writes where its parent's output went. Adopt returns [ErrClosed] once
// [Reaper.Sweep] has begun.
func (r *Reaper) Adopt(pid int, t Trust) (*Proc, error) {
	if pid <= 1 {
		return nil, &RefusedError{PID: pid, Reason: "is not a process mainstay may adopt"}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if p := r.procs[pid]; p != nil {
		return nil, &RefusedError{PID: pid, Reason: "is " + p.name + ", already supervised"}
	}
	st, err := ReadStat(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &RefusedError{PID: pid, Reason: "does not exist", Gone: true}
	}
	if err != nil {
		return nil, &RefusedError{PID: pid, Reason: err.Error()}
	}
	switch self := os.Getpid(); {
	case st.PPID != self:
		return nil, &RefusedError{PID: pid, Reason: fmt.Sprintf("(%s) is not a child of mainstay (its parent is %d)", st.Command(), st.PPID)}
	case st.Start < t.After:
		return nil, &RefusedError{PID: pid, Reason: fmt.Sprintf("(%s) started before the start command", st.Command())}
	}
	ruid, euid, err := readUIDs(pid)
	if err != nil {
		return nil, &RefusedError{PID: pid, Reason: err.Error()}
	}
	if ruid != t.UID || euid != t.UID {
		as := strconv.Itoa(euid)
		if ruid != euid {
			as = fmt.Sprintf("%d (real uid %d)", euid, ruid)
		}
		return nil, &RefusedError{PID: pid, Reason: fmt.Sprintf("(%s) runs as uid %s, not %d", st.Command(), as, t.UID)}
	}
	done := make(chan struct{})
	p := &Proc{r: r, pid: pid, name: t.Name, done: done, out: noOutput(), start: st.Start, leader: st.PGRP == pid}
	r.procs[pid] = p
	if p.leader {
		r.groups[pid] = p
	}
	if r.sleeping { // as in Start: waitid has a child to wait on again
		r.sleeping = false
		r.wake <- struct{}{}
	}
	return p, nil
}

// Subreaper reports whether the program is PID 1 or a child subreaper:
// whether processes orphaned below it become its children (a daemon its
// child forks away, most of all).
func (r *Reaper) Subreaper() bool { return r.pid1 || r.subreaper }

// noOutput is the output of an adopted child: none of its own.
func noOutput() *output {
	o := &output{wait: DefaultOutputWait, done: make(chan struct{})}
	close(o.done)
	return o
}

// readUIDs reads the real and effective uid of pid from its
// /proc/PID/status ("Uid:\tREAL\tEFFECTIVE\tSAVED\tFS").
func readUIDs(pid int) (real, effective int, err error) {
	var buf [4096]byte
	b, err := readProc(pid, "status", buf[:])
	if err != nil {
		return 0, 0, err
	}
	_, line, ok := bytes.Cut(b, []byte("\nUid:"))
	if ok {
		line, _, _ = bytes.Cut(line, []byte("\n"))
		f := bytes.Fields(line)
		if len(f) >= 2 {
			real, err1 := strconv.Atoi(string(f[0]))
			effective, err2 := strconv.Atoi(string(f[1]))
			if err1 == nil && err2 == nil {
				return real, effective, nil
			}
		}
	}
	return 0, 0, errors.New("malformed /proc/PID/status")
}

// StartTicks is when the child started, in clock ticks after boot (its
// [Stat.Start], read when it was registered): the [Trust.After] for what
// it forks away.
func (p *Proc) StartTicks() uint64 { return p.start }

// groupLeft lists the live members of the process group pgid other than
// its leader: what killing the group ends.
func groupLeft(pgid int) []Stat {
	procs, _ := liveDescendants()
	var out []Stat
	for _, s := range procs {
		if s.PGRP == pgid && s.PID != pgid {
			out = append(out, s)
		}
	}
	return out
}

// killGroup sends SIGKILL to the process group of p, whose leader has
// exited, and logs each member it ends, by PID and command. The caller
// holds r.mu.
func (r *Reaper) killGroup(p *Proc) {
	for _, s := range groupLeft(p.pid) {
		r.log.Info("killing what "+p.name+" left in its process group", "pid", s.PID, "command", s.Command(), "leader", p.pid)
	}
	_ = unix.Kill(-p.pid, unix.SIGKILL)
}

// KillLeft sends SIGKILL to the process group of p, an exited child that
// was not started with [Spec.KillGroup] (a daemon's start command), when
// members of it are still alive, and logs each, by PID and command, with
// why. A member holds the group ID, so the group signalled is p's; with
// none left, nothing is sent.
func (p *Proc) KillLeft(why string) {
	left := groupLeft(p.pid)
	for _, s := range left {
		p.r.log.Warn("killing what "+p.name+" left running: "+why, "pid", s.PID, "command", s.Command())
	}
	if len(left) > 0 {
		_ = unix.Kill(-p.pid, unix.SIGKILL)
	}
}
