package reaper

import (
	"context"
	"log/slog"
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

const (
	// rescanEvery is how often the kill phase of a sweep looks for
	// processes that became descendants after its walk of /proc (forked
	// while SIGKILL was being sent). It walks /proc again only when no
	// process has been reaped since the last look, or at the latest after
	// rescanMax: a walk reads the stat of every process the program can
	// see, and while a mass exit is being reaped it would take CPU from it.
	rescanEvery = 100 * time.Millisecond
	rescanMax   = 500 * time.Millisecond
	// maxLead bounds how long before the deadline a sweep prepares its
	// SIGKILL (walks /proc, opens a pidfd for each process), so that
	// SIGKILL goes out at the deadline.
	maxLead = 500 * time.Millisecond
	// named is how many leftover processes a sweep names in its log, each
	// with its PID and command line; the others are only counted.
	named = 5
)

// Sweep makes sure no descendant outlives the program. It refuses new
// children, then sends SIGTERM and SIGCONT (so stopped processes can act on
// it) to every remaining descendant, waits until deadline for them to exit,
// sends SIGKILL to whatever is left, and returns once wait4 reports that the
// program has no children at all, or [KillWait] after the deadline. It
// returns at once when there are none, and sends SIGKILL at once when the
// deadline has passed. It returns how many descendants were still there
// when it gave up (0 when none).
//
// The deadline holds whatever the number of leftovers. The SIGKILL timer
// runs from it before anything else is done. Each phase walks /proc once
// and signals each process once (SIGTERM and SIGCONT together); the walk
// for SIGKILL, and the pidfds it opens, are done shortly before the
// deadline (twice as long before it as the walk for SIGTERM took, at most
// 500 ms), so that at the deadline only the signals remain to be sent.
// The kill phase looks again every 100 ms for processes forked while
// SIGKILL was being sent, but walks /proc only when no process was reaped
// since the last look, or 500 ms after the last walk; never on every reap.
//
// KillWait after the deadline, once every exit already reported is reaped,
// a descendant still there that SIGKILL could not even start to end (in
// uninterruptible sleep, D state, and not exiting) is reported as stuck in
// the kernel. Any other is on its way out: a mass exit queues processes on
// the kernel's locks and the CPUs, in D state too. Those are reported as
// still exiting. Sweep waits for neither.
//
// As PID 1 it signals with kill(-1), which reaches every process of the PID
// namespace but the caller, whatever its session or group. Otherwise it walks
// /proc for descendants and signals each through a pidfd; as a subreaper the
// program inherits every orphaned descendant, so the walk sees them all.
// Either way it logs the number of processes it stops, and names the first
// few by PID and command line.
func (r *Reaper) Sweep(deadline time.Time) (left int) {
	kill := time.NewTimer(time.Until(deadline))
	defer kill.Stop()
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()

	// The reaper goroutine may be the one that reaps the last child:
	// each wait below is for its next reap, or this loop's own.
	reaped := r.nextReap()
	if r.drain() {
		return 0
	}
	var prep <-chan time.Time // fires when the SIGKILL pass is to be prepared
	grace := time.Until(deadline).Round(time.Millisecond)
	if grace > 0 {
		start := time.Now()
		term := r.prepare()
		lead := min(2*time.Since(start), maxLead)
		if n := term.send(unix.SIGTERM, unix.SIGCONT); n > 0 {
			r.log.Info("stopping leftover processes", "count", n, "grace", grace)
			r.logNames(slog.LevelInfo, term.names, n)
		}
		t := time.NewTimer(time.Until(deadline.Add(-lead)))
		defer t.Stop()
		prep = t.C
	}
	var killPass *pass // prepared before the deadline
	defer func() { killPass.close() }()
	var giveUp <-chan time.Time
	rescan := time.NewTicker(rescanEvery)
	rescan.Stop() // until SIGKILL is sent
	defer rescan.Stop()
	var lastReap, lastWalk time.Time
	for !r.drain() {
		select {
		case <-reaped:
			reaped = r.nextReap()
			lastReap = time.Now()
		case <-prep:
			if giveUp == nil { // not sent yet
				killPass = r.prepare()
			}
		case <-kill.C:
			giveUp = time.After(time.Until(deadline.Add(KillWait)))
			if killPass == nil {
				killPass = r.prepare()
			}
			switch n := killPass.send(unix.SIGKILL); {
			case n == 0: // they exited meanwhile
			case grace > 0:
				r.log.Warn("leftover processes did not exit within grace; killing them", "count", n)
				r.logNames(slog.LevelWarn, killPass.names, n)
			default:
				r.log.Warn("no grace left for leftover processes; killing them", "count", n)
				r.logNames(slog.LevelWarn, killPass.names, n)
			}
			lastWalk = time.Now()
			rescan.Reset(rescanEvery)
		case now := <-rescan.C:
			// As PID 1, kill(-1) needs no walk.
			switch {
			case r.pid1:
				_ = unix.Kill(-1, unix.SIGKILL)
			case now.Sub(lastReap) >= rescanEvery || now.Sub(lastWalk) >= rescanMax:
				lastWalk = now
				r.prepare().send(unix.SIGKILL)
			}
		case <-giveUp:
			// Reap what has exited already: an exit not yet reaped is
			// not a process stuck in the kernel.
			if r.drain() {
				return 0
			}
			// A process forked since the last walk has its SIGKILL too.
			if r.pid1 {
				_ = unix.Kill(-1, unix.SIGKILL)
			} else {
				r.prepare().send(unix.SIGKILL)
			}
			var stuck, exiting []int
			for _, s := range r.leftovers() {
				if s.State == 'D' && !s.Exiting() {
					stuck = append(stuck, s.PID)
				} else {
					exiting = append(exiting, s.PID)
				}
			}
			if len(stuck)+len(exiting) == 0 {
				// Only exits not yet reported are left, for the next drain.
				giveUp = time.After(rescanEvery)
				continue
			}
			if len(stuck) > 0 {
				r.log.Error("processes still there after SIGKILL (stuck in the kernel, D state?); giving up on them",
					"count", len(stuck), "pids", stuck[:min(len(stuck), named)], "waited", KillWait)
			}
			if len(exiting) > 0 {
				r.log.Warn("processes still exiting after SIGKILL; not waiting for them",
					"count", len(exiting), "pids", exiting[:min(len(exiting), named)], "waited", KillWait)
			}
			return len(stuck) + len(exiting)
		}
	}
	return 0
}

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

// A pass signals every live descendant once. Preparing it (the walk of
// /proc, a pidfd for each process, the command lines of the first few) is
// apart from sending its signals: once SIGKILL goes out, the dying
// processes and their reaping compete with the sweep for the CPUs.
type pass struct {
	pid1    bool
	n       int      // as PID 1: the processes walked
	targets []target // with their pidfds open
	rest    []Stat   // walked, not opened yet: file descriptors ran out
	names   []leftover
}

// target is a process about to be signalled: its PID and a pidfd for it,
// or -1 where pidfds are unavailable.
type target struct{ pid, fd int }

// prepare walks /proc for a pass. As PID 1 it only counts the processes
// and reads the first few command lines; kill(-1) reaches them all.
func (r *Reaper) prepare() *pass {
	procs := r.leftovers()
	p := &pass{pid1: r.pid1}
	if r.pid1 {
		p.n = len(procs)
		for _, s := range procs[:min(len(procs), named)] {
			p.names = append(p.names, leftover{s.PID, s.Command()})
		}
		return p
	}
	p.targets = make([]target, 0, len(procs))
	for i, s := range procs {
		t, ok, full := open(s, false)
		if full {
			p.rest = procs[i:]
			break
		}
		if ok {
			if len(p.names) < named {
				p.names = append(p.names, leftover{s.PID, s.Command()})
			}
			p.targets = append(p.targets, t)
		}
	}
	return p
}

// send sends sigs, in order, to every process of the pass, closes its
// pidfds, and returns how many processes it reached.
func (p *pass) send(sigs ...syscall.Signal) int {
	if p.pid1 {
		for _, sig := range sigs {
			_ = unix.Kill(-1, sig)
		}
		return p.n
	}
	n := sendTo(p.targets, sigs)
	p.targets = nil
	// Out of file descriptors: as many as there are, then again.
	for len(p.rest) > 0 {
		var batch []target
		for len(p.rest) > 0 {
			t, ok, full := open(p.rest[0], len(batch) == 0)
			if full {
				break
			}
			p.rest = p.rest[1:]
			if ok {
				batch = append(batch, t)
			}
		}
		n += sendTo(batch, sigs)
	}
	return n
}

// close closes the pidfds of a pass that was not sent; p may be nil.
func (p *pass) close() {
	if p == nil {
		return
	}
	for _, t := range p.targets {
		if t.fd >= 0 {
			unix.Close(t.fd)
		}
	}
	p.targets = nil
}

// open returns a target for the process s describes, if it is still that
// process and has not exited. Full says no file descriptor was left for
// its pidfd; with noFD set, it then falls back to kill(2) as it does
// without pidfds.
func open(s Stat, noFD bool) (t target, ok, full bool) {
	fd, err := unix.PidfdOpen(s.PID, 0)
	switch err {
	case nil:
	case unix.ESRCH:
		return target{}, false, false // gone already
	case unix.EMFILE, unix.ENFILE:
		if !noFD {
			return target{}, false, true
		}
		fd = -1
	default:
		// No pidfds (a kernel before 5.3, or a seccomp filter): kill(2)
		// races with a PID reused between the check below and the signal.
		fd = -1
	}
	// The pidfd pins the process: while /proc shows the start time the
	// walk saw, it is the process the walk saw.
	if now, err := ReadStat(s.PID); err != nil || now.Start != s.Start || now.Exited() {
		if fd >= 0 {
			unix.Close(fd)
		}
		return target{}, false, false
	}
	return target{s.PID, fd}, true, false
}

// sendTo sends sigs to each of targets, closes their pidfds, and returns
// how many it reached.
func sendTo(targets []target, sigs []syscall.Signal) (n int) {
	for _, t := range targets {
		reached := false
		for _, sig := range sigs {
			var err error
			if t.fd >= 0 {
				err = unix.PidfdSendSignal(t.fd, sig, nil, 0)
			} else {
				err = unix.Kill(t.pid, sig)
			}
			if err != nil {
				break
			}
			reached = true
		}
		if reached {
			n++
		}
	}
	for _, t := range targets {
		if t.fd >= 0 {
			unix.Close(t.fd)
		}
	}
	return n
}

// leftovers lists the program's live descendants (those that have not
// exited), by PID, from one walk of /proc.
func (r *Reaper) leftovers() []Stat {
	out, err := liveDescendants()
	if err != nil {
		r.log.Error("cannot list processes", "err", err)
	}
	return out
}

// liveDescendants lists the program's descendants that have not exited,
// by PID, from one walk of /proc.
func liveDescendants() ([]Stat, error) {
	root := os.Getpid()
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	children := make(map[int][]Stat)
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if s, err := ReadStat(pid); err == nil {
			children[s.PPID] = append(children[s.PPID], s)
		}
	}
	var out []Stat
	queue := []int{root}
	seen := map[int]bool{root: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if !seen[c.PID] {
				seen[c.PID] = true
				queue = append(queue, c.PID)
				if !c.Exited() {
					out = append(out, c)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b Stat) int { return a.PID - b.PID })
	return out, nil
}
