package readiness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mainstay-dev/mainstay/reaper"
	"golang.org/x/sys/unix"
)

// NotifyEnv is the variable of the systemd notification protocol: the
// address of the datagram socket a service writes "READY=1" to.
const NotifyEnv = "NOTIFY_SOCKET"

// Notify passes when its sender sends READY=1 over the systemd
// notification protocol (sd_notify(3)) to the socket mainstay passes to
// that sender, and to it only, as $NOTIFY_SOCKET. The sender is main (the
// probe [Parse] makes, for --ready notify) or one run of a sidecar (the
// probe [Notify.ForRun] makes, for ready=notify); both share this one
// implementation and differ only in the name their log lines give the
// sender. Nothing is polled: the wait ends when the message arrives.
//
// The socket is an abstract Unix datagram socket (its address starts with
// "@"), bound by the kernel's autobind to a name no other socket has: it
// needs no file, so it works on a read-only root filesystem, and it
// vanishes with mainstay. An abstract socket has no file permissions, so
// anyone in the network namespace may write to it; a message is believed
// only when its SCM_CREDENTIALS show a sender in the process tree of the
// PID given to [Notify.Start] (that process or a descendant, found through
// /proc while the message's descriptors are still open), or running as
// the uid given there. Log lines name the sender as it is: "main" (or
// "sidecar") for the tree, "a process of main's user" for the rest, with
// the sender's own PID. A refused message is logged in full the first
// time, then only counted: one line per [RefusedInterval] while refusals
// go on. A sender found outside the tree is remembered by PID and start
// time, so its next messages cost one read of /proc, not a walk.
//
// Of the protocol, READY=1 passes the probe, STATUS= and MAINPID= are
// logged (MAINPID never changes which process is main or the sidecar),
// STOPPING=1 from the tree closes [Notify.Stopping] (from another process
// of the user it is logged and ignored: that process does not speak for
// main), EXTEND_TIMEOUT_USEC=N moves the readiness deadline to at least
// now+N; the rest is ignored. Of each field, one datagram counts once (the
// first STATUS=, as systemd takes it), so a datagram makes a few log lines
// at most. Every file descriptor that arrives with a message (SCM_RIGHTS)
// is closed once its sender is placed: sd_notify_barrier(3), used by
// systemd-notify, waits until the one it sends is closed.
//
// The life of a Notify: [Parse] (or [Notify.ForRun]) makes it,
// [Notify.Listen] creates the socket before its process starts,
// [Notify.Start] begins reading once that process's PID is known, [Wait]
// waits on it, and [Notify.Close] ends it. Messages go on being read after
// the wait, for STOPPING=1 and STATUS=.
type Notify struct {
	who      string        // "main" or "sidecar": the sender, in log lines and errors
	ready    chan struct{} // closed at the first believed READY=1
	stopping chan struct{} // closed at the first believed STOPPING=1
	extend   chan time.Time

	conn *net.UnixConn
	addr string
	done chan struct{} // made by Start, closed when the reader has returned

	readyOnce, stopOnce sync.Once
}

// newNotify makes main's notify probe.
func newNotify() *Notify { return notifyFor("main", make(chan time.Time, 1)) }

func notifyFor(who string, extend chan time.Time) *Notify {
	return &Notify{
		who:      who,
		ready:    make(chan struct{}),
		stopping: make(chan struct{}),
		extend:   extend,
	}
}

// ForRun returns a fresh notify probe for one run of a sidecar whose
// ready= is p, with its own socket (call Listen before the run starts) and
// its own ready state.
//
// A socket per run rather than one per sidecar: the address a run is
// given is known only to that run, and the socket is closed once the run
// has exited, so a READY=1 from an earlier run — still queued when it
// exited, or sent later by a process it left behind — is refused by the
// kernel (ECONNREFUSED) or dropped with the old socket, and can never
// count for the new run. One socket kept across runs would have to tell
// the runs' messages apart by their sender, and a sender believed for
// being the sidecar's user looks the same in every run. A run's socket is
// cheap: one socket(2) and bind(2).
//
// The EXTEND_TIMEOUT_USEC of every run go to p's [Notify.Extensions]:
// they extend the one wait for the sidecar to be ready, which spans its
// restarts. The waits of the runs themselves (a [Wait] without a timeout)
// do not read them.
func (p *Notify) ForRun() *Notify { return notifyFor("sidecar", p.extend) }

func (p *Notify) String() string { return "notify" }

// Check passes once the sender has sent READY=1.
func (p *Notify) Check(ctx context.Context, _ reaper.Runner) error {
	select {
	case <-p.ready:
		return nil
	default:
		return fmt.Errorf("%s has not sent READY=1 to $%s yet", p.who, NotifyEnv)
	}
}

// await blocks until READY=1 or until ctx is done: a notify probe is not
// polled.
func (p *Notify) await(ctx context.Context) error {
	select {
	case <-p.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Extensions receives the moment a wait should not end before, each time
// the sender sends EXTEND_TIMEOUT_USEC (only the latest is kept until it
// is received). It is nil for a nil Notify.
func (p *Notify) Extensions() <-chan time.Time {
	if p == nil {
		return nil
	}
	return p.extend
}

// Stopping is closed when the sender, or a process of its tree, has sent
// STOPPING=1 (another process of its user cannot). It is nil for a nil
// Notify, so a caller may select on it without checking for a notify
// probe.
func (p *Notify) Stopping() <-chan struct{} {
	if p == nil {
		return nil
	}
	return p.stopping
}

// NotifyOf returns the notify probe among probes, nil when there is none.
func NotifyOf(probes []Probe) *Notify {
	for _, p := range probes {
		if n, ok := p.(*Notify); ok {
			return n
		}
	}
	return nil
}

// ForRun returns the probes for one run of a sidecar whose ready= gave
// probes: the same probes (the polled ones keep nothing between waits),
// except that the notify probe, when there is one, is replaced by a fresh
// one ([Notify.ForRun]), which ForRun also returns; nil when there is none.
func ForRun(probes []Probe) ([]Probe, *Notify) {
	out := make([]Probe, len(probes))
	var run *Notify
	for i, p := range probes {
		if n, ok := p.(*Notify); ok {
			run = n.ForRun()
			p = run
		}
		out[i] = p
	}
	return out, run
}

// Listen creates the socket: an abstract Unix datagram socket with
// SO_PASSCRED, bound to a name the kernel chooses, close-on-exec so that
// no child inherits it. Call it before the sender starts, and pass
// [Notify.Env] in its environment.
func (p *Notify) Listen() error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "notify")
	defer f.Close() // net.FileConn keeps a duplicate
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return fmt.Errorf("notify socket: SO_PASSCRED: %w", err)
	}
	// An empty name asks the kernel for a unique abstract one (autobind).
	if err := unix.Bind(fd, &unix.SockaddrUnix{}); err != nil {
		return fmt.Errorf("notify socket: bind: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	su, ok := sa.(*unix.SockaddrUnix)
	if !ok || !strings.HasPrefix(su.Name, "@") {
		return fmt.Errorf("internal error: notify socket bound to %v", sa)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	p.conn, p.addr = c.(*net.UnixConn), su.Name
	return nil
}

// Env is "NOTIFY_SOCKET=@ADDRESS", for the sender's environment (and no
// other) once Listen succeeded.
func (p *Notify) Env() string { return NotifyEnv + "=" + p.addr }

// Start reads the messages sent to the socket, believing those whose
// sender is pid (main, or the sidecar's run) or a descendant of it, or runs
// as uid (its user), until Close; the messages of another process of uid
// cannot announce STOPPING=1. Listen must have succeeded. Start must
// happen before Close: the same goroutine calls both, or Close waits for
// the goroutine that called Start.
func (p *Notify) Start(pid, uid int, log *slog.Logger) {
	p.done = make(chan struct{})
	go p.read(pid, uid, log)
}

// Close closes the socket and waits until the reader has returned.
// It may be called on a nil Notify, and without Start.
func (p *Notify) Close() {
	if p == nil || p.conn == nil {
		return
	}
	p.conn.Close()
	if p.done != nil {
		<-p.done
	}
}

// maxNotifyFDs is SCM_MAX_FD, the most descriptors one message may carry.
const maxNotifyFDs = 253

// RefusedInterval is how often refused notify messages are reported: the
// first refused message is logged in full, the next ones only counted,
// and the count logged once per interval while they go on, so that a
// process that floods the socket writes two lines every interval at most.
const RefusedInterval = 10 * time.Second

// sender is who sent a message, as far as mainstay can tell.
type sender int

const (
	stranger sender = iota // neither in the tree nor the user: refused
	inTree                 // the process started (main, a sidecar's run) or a descendant of it
	sameUser               // another process of its user (or one that left /proc first)
)

func (p *Notify) read(pid, uid int, log *slog.Logger) {
	defer close(p.done)
	refused := newRefusals(log)
	defer refused.stop()
	tree := newTree(pid)
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*maxNotifyFDs))
	for {
		n, oobn, flags, _, err := p.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("cannot read the notify socket", "err", err)
			}
			return
		}
		cred, fds, err := control(oob[:oobn])
		// Who sent it is known before its descriptors are closed: a sender
		// that waits for that (sd_notify_barrier(3), systemd-notify) is
		// still in /proc, where its place in the tree is read.
		from := stranger
		switch {
		case cred == nil:
		case tree.contains(int(cred.Pid)):
			from = inTree
		case int(cred.Uid) == uid:
			from = sameUser
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		switch {
		case err != nil:
			refused.add(0, 0, "notify message refused: bad control data", "err", err)
		case cred == nil:
			refused.add(0, 0, "notify message refused: no sender credentials")
		case from == stranger:
			refused.add(int(cred.Pid), int(cred.Uid), "notify message refused: the sender is neither in "+p.who+"'s process tree nor "+p.who+"'s user",
				"pid", cred.Pid, "uid", cred.Uid, p.who+"_pid", pid, p.who+"_uid", uid)
		case flags&unix.MSG_TRUNC != 0:
			log.Warn("notify message ignored: longer than the buffer", "pid", cred.Pid, "bytes", len(buf))
		default:
			p.handle(string(buf[:n]), int(cred.Pid), from, log)
		}
	}
}

// control returns the sender's credentials of a message's control data,
// nil when there are none, and the descriptors that came with it, which
// the caller must close.
func control(oob []byte) (*unix.Ucred, []int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, nil, err
	}
	var cred *unix.Ucred
	var fds []int
	for _, m := range msgs {
		if rights, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, rights...)
			continue
		}
		if c, err := unix.ParseUnixCredentials(&m); err == nil {
			cred = c
		}
	}
	return cred, fds, nil
}

// refusals reports refused messages: the first in full, then, while they
// go on, one line with their count every interval.
type refusals struct {
	log      *slog.Logger
	interval time.Duration // RefusedInterval; tests shorten it

	mu       sync.Mutex
	timer    *time.Timer // running while refusals are being counted
	count    int         // refused since the last line
	pid, uid int         // the last refused sender
	stopped  bool
}

func newRefusals(log *slog.Logger) *refusals { return &refusals{log: log, interval: RefusedInterval} }

// add reports one refused message from pid and uid (0 when unknown),
// logging msg and attrs when it is the first for a while.
func (r *refusals) add(pid, uid int, msg string, attrs ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if r.timer != nil {
		r.count++
		r.pid, r.uid = pid, uid
		return
	}
	r.log.Warn(msg, attrs...)
	r.timer = time.AfterFunc(r.interval, r.tick)
}

// tick ends an interval: it logs the count of the messages refused in it,
// if any, and starts another; without any, the next refusal is logged in
// full again.
func (r *refusals) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if r.count == 0 {
		r.timer = nil
		return
	}
	r.flush()
	r.timer.Reset(r.interval)
}

func (r *refusals) flush() {
	r.log.Warn("notify messages refused", "count", r.count, "within", r.interval, "last_pid", r.pid, "last_uid", r.uid)
	r.count = 0
}

// stop logs the count not logged yet, and logs nothing more.
func (r *refusals) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.timer != nil {
		r.timer.Stop()
	}
	if r.count > 0 {
		r.flush()
	}
}

// handle acts on one believed message. Each field counts once: READY=1
// and STOPPING=1 if a line says so, and of STATUS=, MAINPID= and
// EXTEND_TIMEOUT_USEC= the first, as systemd's service manager takes
// them, so that one datagram makes a few log lines at most, however many
// lines it has. STOPPING=1 counts only from the process tree: another
// process of the user does not speak for main (or the sidecar).
func (p *Notify) handle(msg string, pid int, from sender, log *slog.Logger) {
	log.Debug("notify message", "pid", pid, "message", msg)
	name := p.who // who the log lines say sent it
	if from == sameUser {
		name = "a process of " + p.who + "'s user"
	}
	var ready, stopping bool
	var status, mainPID, extend *string
	for _, line := range strings.Split(msg, "\n") {
		key, value, _ := strings.Cut(line, "=")
		switch {
		case line == "READY=1":
			ready = true
		case line == "STOPPING=1":
			stopping = true
		case key == "STATUS" && status == nil:
			status = &value
		case key == "MAINPID" && mainPID == nil:
			mainPID = &value
		case key == "EXTEND_TIMEOUT_USEC" && extend == nil:
			extend = &value
		}
	}
	if ready {
		p.readyOnce.Do(func() {
			log.Info(name+" sent READY=1", "pid", pid)
			close(p.ready)
		})
	}
	if stopping && from == sameUser {
		log.Warn(name+" sent STOPPING=1; ignored: only "+p.who+" and its descendants may say it is stopping", "pid", pid)
	} else if stopping {
		p.stopOnce.Do(func() {
			log.Info(name+" sent STOPPING=1", "pid", pid)
			close(p.stopping)
		})
	}
	if status != nil {
		if from == inTree {
			log.Info(p.who+" status", "pid", pid, "status", *status)
		} else {
			log.Info(name+" sent a status", "pid", pid, "status", *status)
		}
	}
	if mainPID != nil {
		log.Info(name+" sent MAINPID; "+p.who+" stays the process mainstay started", "pid", pid, "mainpid", *mainPID)
	}
	if extend != nil {
		us, err := strconv.ParseUint(*extend, 10, 63)
		if err != nil {
			log.Warn("notify message: bad EXTEND_TIMEOUT_USEC", "pid", pid, "value", *extend)
		} else {
			d := time.Duration(min(us, uint64(1<<63-1)/1000)) * time.Microsecond
			p.extendTo(time.Now().Add(d))
		}
	}
}

// extendTo offers t to the wait, keeping only the latest moment when the
// wait has not taken the previous one yet.
func (p *Notify) extendTo(t time.Time) {
	select {
	case old := <-p.extend:
		if old.After(t) {
			t = old
		}
	default:
	}
	// A Notify's reader is the only sender (a sidecar's runs share the
	// channel one after the other), and the buffer is now empty.
	p.extend <- t
}

// maxOutside bounds the senders a tree remembers to be outside it.
const maxOutside = 1024

// tree tells whether a sender is the process a Notify was started for
// or a descendant of it, following parent PIDs in /proc. A process found
// outside the tree can never enter it (an orphan goes to an ancestor, the
// nearest subreaper), so it is remembered, by PID and start time, which
// no later process with its PID shares: a sender that floods the socket
// costs one read of /proc per message, not a walk up to PID 1.
type tree struct {
	root    int
	outside map[procKey]bool
	// stat reads a process's parent and start time; ok is false once it
	// is gone. Tests count its calls.
	stat func(pid int) (ppid int, start uint64, ok bool)
}

type procKey struct {
	pid   int
	start uint64
}

func newTree(root int) *tree { return &tree{root: root, outside: map[procKey]bool{}, stat: readStat} }

// readStat is a tree's stat: pid's parent and start time (in clock ticks
// after boot), read by the program's one /proc/PID/stat reader.
func readStat(pid int) (ppid int, start uint64, ok bool) {
	s, err := reaper.ReadStat(pid)
	return s.PPID, s.Start, err == nil
}

// contains reports whether pid is the root or a descendant of it. A pid
// of 0 (a sender in another PID namespace) or one gone from /proc is not.
func (t *tree) contains(pid int) bool {
	if pid == t.root {
		return true
	}
	if pid <= 1 {
		return false
	}
	ppid, start, ok := t.stat(pid)
	if !ok {
		return false
	}
	key := procKey{pid, start}
	if t.outside[key] {
		return false
	}
	for i := 0; i < 1<<12; i++ {
		switch {
		case ppid == t.root:
			return true
		case ppid <= 1:
			// The walk reached PID 1, or a parent outside the namespace:
			// every step was read, the answer is final.
			if len(t.outside) >= maxOutside {
				clear(t.outside)
			}
			t.outside[key] = true
			return false
		}
		if ppid, _, ok = t.stat(ppid); !ok {
			return false // an ancestor exited meanwhile: not remembered
		}
	}
	return false
}

// Upstream is the notification socket mainstay itself was given, by a
// systemd unit of Type=notify or podman --sdnotify=container: mainstay
// tells it when it is ready and when it stops. A nil *Upstream (no
// socket) does nothing.
type Upstream struct {
	addr string
	log  *slog.Logger
}

// NewUpstream returns the notify socket of mainstay's own supervisor, its
// $NOTIFY_SOCKET at start-up, addr; nil when addr is empty. No child
// inherits that variable (see plan.Environ).
func NewUpstream(addr string, log *slog.Logger) *Upstream {
	if addr == "" {
		return nil
	}
	return &Upstream{addr: addr, log: log}
}

// Send sends state ("READY=1", "STOPPING=1") and logs a failure: the
// supervisor above not hearing it is no reason for mainstay to stop.
func (u *Upstream) Send(state string) {
	if u == nil {
		return
	}
	if err := u.send(state); err != nil {
		u.log.Warn("cannot notify "+NotifyEnv, "addr", u.addr, "state", state, "err", err)
		return
	}
	u.log.Debug("notified "+NotifyEnv, "addr", u.addr, "state", state)
}

func (u *Upstream) send(state string) error {
	if !strings.HasPrefix(u.addr, "/") && !strings.HasPrefix(u.addr, "@") {
		return errors.New("only a socket path or an abstract @name is supported")
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendto(fd, []byte(state), 0, &unix.SockaddrUnix{Name: u.addr})
}
