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
// PID given to [Notify.Start], or running as the uid given there.
//
// Of the protocol, READY=1 passes the probe, STATUS= and MAINPID= are
// logged (MAINPID never changes which process is main or the sidecar),
// STOPPING=1 closes [Notify.Stopping], EXTEND_TIMEOUT_USEC=N moves the
// readiness deadline to at least now+N; the rest is ignored. Every file
// descriptor that arrives with a message (SCM_RIGHTS) is closed at once:
// sd_notify_barrier(3), used by systemd-notify, waits until the one it
// sends is closed.
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
func (p *Notify) Check(ctx context.Context, _ Runner) error {
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

// Stopping is closed when the sender has sent STOPPING=1. It is nil for a
// nil Notify, so a caller may select on it without checking for a notify
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
// as uid (its user), until Close. Listen must have succeeded. Start must
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

func (p *Notify) read(pid, uid int, log *slog.Logger) {
	defer close(p.done)
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
		cred := closeRights(oob[:oobn], log)
		switch {
		case cred == nil:
			log.Warn("notify message refused: no sender credentials")
		case int(cred.Pid) != pid && int(cred.Uid) != uid && !descendant(int(cred.Pid), pid):
			log.Warn("notify message refused: the sender is neither in "+p.who+"'s process tree nor "+p.who+"'s user",
				"pid", cred.Pid, "uid", cred.Uid, p.who+"_pid", pid, p.who+"_uid", uid)
		case flags&unix.MSG_TRUNC != 0:
			log.Warn("notify message ignored: longer than the buffer", "pid", cred.Pid, "bytes", len(buf))
		default:
			p.handle(string(buf[:n]), int(cred.Pid), log)
		}
	}
}

// closeRights closes every descriptor that came with a message, and
// returns the sender's credentials, nil when there are none.
func closeRights(oob []byte, log *slog.Logger) *unix.Ucred {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		log.Warn("notify message: bad control data", "err", err)
		return nil
	}
	var cred *unix.Ucred
	for _, m := range msgs {
		if fds, err := unix.ParseUnixRights(&m); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			continue
		}
		if c, err := unix.ParseUnixCredentials(&m); err == nil {
			cred = c
		}
	}
	return cred
}

// handle acts on the lines of one believed message.
func (p *Notify) handle(msg string, pid int, log *slog.Logger) {
	log.Debug("notify message", "pid", pid, "message", msg)
	for _, line := range strings.Split(msg, "\n") {
		key, value, _ := strings.Cut(line, "=")
		switch key {
		case "READY":
			if value == "1" {
				p.readyOnce.Do(func() {
					log.Info(p.who+" sent READY=1", "pid", pid)
					close(p.ready)
				})
			}
		case "STOPPING":
			if value == "1" {
				p.stopOnce.Do(func() {
					log.Info(p.who+" sent STOPPING=1", "pid", pid)
					close(p.stopping)
				})
			}
		case "STATUS":
			log.Info(p.who+" status", "pid", pid, "status", value)
		case "MAINPID":
			log.Info(p.who+" reported its PID; "+p.who+" stays the process mainstay started", "pid", pid, "mainpid", value)
		case "EXTEND_TIMEOUT_USEC":
			us, err := strconv.ParseUint(value, 10, 63)
			if err != nil {
				log.Warn("notify message: bad EXTEND_TIMEOUT_USEC", "pid", pid, "value", value)
				continue
			}
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

// descendant reports whether pid is a descendant of root, following
// parent PIDs in /proc.
func descendant(pid, root int) bool {
	for i := 0; pid > 1 && i < 1<<12; i++ {
		s, err := reaper.ReadStat(pid)
		if err != nil {
			return false // gone
		}
		pid = s.PPID
		if pid == root {
			return true
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

// TakeNotifySocket returns mainstay's own $NOTIFY_SOCKET, nil when unset,
// and removes the variable from mainstay's environment, so that no child
// inherits it: main gets mainstay's own socket only with --ready notify, a
// sidecar its run's own only with ready=notify, and helpers and probes
// never get one. Call it before any child starts.
func TakeNotifySocket(log *slog.Logger) *Upstream {
	addr, ok := os.LookupEnv(NotifyEnv)
	os.Unsetenv(NotifyEnv)
	if !ok || addr == "" {
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
