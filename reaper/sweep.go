package reaper

import (
	"os"
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
		n := r.signalAll(unix.SIGTERM)
		r.signalAll(unix.SIGCONT)
		r.log.Info("stopping leftover processes", "count", n, "grace", grace)
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
			n := r.signalAll(unix.SIGKILL)
			if grace > 0 {
				r.log.Warn("leftover processes did not exit within grace; killing them", "count", n)
			} else {
				r.log.Warn("no grace left for leftover processes; killing them", "count", n)
			}
		case <-giveUp:
			left = len(descendants(os.Getpid()))
			r.log.Error("processes still there after SIGKILL (stuck in the kernel, D state?); giving up on them", "count", left, "waited", KillWait)
			return left
		}
	}
	return 0
}

// signalAll sends sig to every descendant and returns how many it reached.
func (r *Reaper) signalAll(sig syscall.Signal) int {
	if r.pid1 {
		n := len(descendants(1))
		_ = unix.Kill(-1, sig)
		return n
	}
	n := 0
	for pid, ppid := range descendants(os.Getpid()) {
		fd, err := unix.PidfdOpen(pid, 0)
		switch {
		case err == unix.ESRCH:
			continue // gone already
		case err != nil:
			// No pidfds (a kernel before 5.3, or a seccomp filter): fall
			// back to kill, racing only with a PID reused in between.
			if parent(pid) == ppid && unix.Kill(pid, sig) == nil {
				n++
			}
			continue
		}
		// The pidfd pins the process; check it is still the one we saw.
		if parent(pid) == ppid && unix.PidfdSendSignal(fd, sig, nil, 0) == nil {
			n++
		}
		unix.Close(fd)
	}
	return n
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
