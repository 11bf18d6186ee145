package reaper

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// KillWait bounds how long [Reaper.Sweep] waits for processes it has sent
// SIGKILL: one stuck in uninterruptible sleep (D state, a hung NFS mount)
// does not die until the kernel lets it, and must not keep the program
// from reporting and exiting.
const KillWait = time.Second

// Sweep makes sure no descendant outlives the program. It refuses new
// children, then sends SIGTERM and SIGCONT (so stopped processes can act on
// it) to every remaining descendant, waits until deadline for them to exit,
// sends SIGKILL to whatever is left, and returns once wait4 reports that the
// program has no children at all, or [KillWait] after the deadline. It
// returns at once when there are none, and sends SIGKILL at once when the
// deadline has passed. It returns how many descendants were still there
// when it gave up (0 when none).
//
// As PID 1 it signals with kill(-1), which reaches every process of the PID
// namespace but the caller, whatever its session or group. Otherwise it walks
// /proc for descendants and signals each through a pidfd; as a subreaper the
// program inherits every orphaned descendant, so the walk sees them all.
func (r *Reaper) Sweep(deadline time.Time) (left int) {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()

	// The reaper goroutine may be the one that reaps the last child:
	// each wait below is for its next reap, or this loop's own.
	reaped := r.nextReap()
	if r.drain() {
		return 0
	}
	grace := time.Until(deadline).Round(time.Millisecond)
	if grace > 0 {
		n, names := r.signalAll(unix.SIGTERM)
		r.signalAll(unix.SIGCONT)
		r.log.Info("stopping leftover processes", "count", n, "grace", grace)
		r.logNames(slog.LevelInfo, names, n)
	}
	timer := time.NewTimer(max(grace, 0))
	defer timer.Stop()
	var giveUp <-chan time.Time
	killing := false
	for !r.drain() {
		if killing {
			// New orphans may have been reparented to us since.
			r.signalAll(unix.SIGKILL)
		}
		select {
		case <-reaped:
			reaped = r.nextReap()
		case <-timer.C:
			killing = true
			giveUp = time.After(time.Until(deadline.Add(KillWait)))
			n, names := r.signalAll(unix.SIGKILL)
			if grace > 0 {
				r.log.Warn("leftover processes did not exit within grace; killing them", "count", n)
			} else {
				r.log.Warn("no grace left for leftover processes; killing them", "count", n)
			}
			r.logNames(slog.LevelWarn, names, n)
		case <-giveUp:
			left = len(descendants(os.Getpid()))
			r.log.Error("processes still there after SIGKILL (stuck in the kernel, D state?); giving up on them", "count", left, "waited", KillWait)
			return left
		}
	}
	return 0
}

// named is how many leftover processes a sweep names in its log, each
// with its PID and command line; the others are only counted.
const named = 5

// leftover is a process a sweep stops, as its log names it.
type leftover struct {
	pid     int
	command string
}

// logNames logs the leftovers in names, at level, one a line, then how
// many of the n stopped are not named.
func (r *Reaper) logNames(level slog.Level, names []leftover, n int) {
	ctx := context.Background()
	for _, l := range names {
		r.log.Log(ctx, level, "leftover process", "pid", l.pid, "command", l.command)
	}
	if n > len(names) {
		r.log.Log(ctx, level, "more leftover processes", "count", n-len(names))
	}
}

// signalAll sends sig to every descendant and returns how many it reached,
// with the PID and command line of the first few (by PID), read before the
// signal.
func (r *Reaper) signalAll(sig syscall.Signal) (n int, names []leftover) {
	if r.pid1 {
		all := descendants(1)
		for _, pid := range slices.Sorted(maps.Keys(all)) {
			if len(names) == named {
				break
			}
			if s, err := ReadStat(pid); err == nil {
				names = append(names, leftover{pid, s.Command()})
			}
		}
		_ = unix.Kill(-1, sig)
		return len(all), names
	}
	all := descendants(os.Getpid())
	for _, pid := range slices.Sorted(maps.Keys(all)) {
		ppid := all[pid]
		var name leftover
		if len(names) < named {
			if s, err := ReadStat(pid); err == nil && s.PPID == ppid {
				name = leftover{pid, s.Command()}
			}
		}
		fd, err := unix.PidfdOpen(pid, 0)
		switch {
		case err == unix.ESRCH:
			continue // gone already
		case err != nil:
			// No pidfds (a kernel before 5.3, or a seccomp filter): fall
			// back to kill, racing only with a PID reused in between.
			if parent(pid) == ppid && unix.Kill(pid, sig) == nil {
				n++
				if name.pid != 0 {
					names = append(names, name)
				}
			}
			continue
		}
		// The pidfd pins the process; check it is still the one we saw.
		if parent(pid) == ppid && unix.PidfdSendSignal(fd, sig, nil, 0) == nil {
			n++
			if name.pid != 0 {
				names = append(names, name)
			}
		}
		unix.Close(fd)
	}
	return n, names
}

// descendants maps each live descendant of root to its parent, read from
// /proc/PID/stat.
func descendants(root int) map[int]int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := make(map[int][]int)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := parent(pid); pp > 0 {
			children[pp] = append(children[pp], pid)
		}
	}
	out := make(map[int]int)
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if _, seen := out[c]; !seen && c != root {
				out[c] = p
				queue = append(queue, c)
			}
		}
	}
	return out
}

// parent returns the parent PID of pid, or -1 when pid is gone.
func parent(pid int) int {
	s, err := ReadStat(pid)
	if err != nil {
		return -1
	}
	return s.PPID
}
