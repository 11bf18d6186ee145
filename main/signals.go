package mainproc

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// inherited lists the signals that were ignored when mainstay started
// (nohup, a background job of a non-interactive shell): mainstay leaves
// them ignored, so every child inherits SIG_IGN through exec exactly as it
// would from a plain exec or from tini. The Go runtime keeps an inherited
// SIG_IGN only for SIGHUP and SIGINT, and overrides it for every other
// signal before any of mainstay's code runs, so only those two can be
// kept; this is read before anything subscribes to a signal.
var inherited = func() map[syscall.Signal]bool {
	m := map[syscall.Signal]bool{}
	for s := syscall.Signal(1); s <= 64; s++ {
		if signal.Ignored(s) {
			m[s] = true
		}
	}
	return m
}()

// forwarded lists every signal mainstay subscribes to and passes on: all
// catchable signals except SIGCHLD (the reaper's), SIGURG (Go's preemption
// signal), SIGTTIN and SIGTTOU (job control aimed at mainstay itself: with a
// handler, a background write under "stty tostop" livelocks), SIGPIPE (it
// only means mainstay's own write failed), SIGPROF (the profiler's),
// signals 32 to 34, which the Go runtime keeps for itself and never
// delivers, and the signals mainstay was started with ignored (see
// inherited). The fault signals (SIGSEGV, SIGABRT, ...) are subscribed too:
// a real fault in mainstay still crashes it, but one sent with kill is
// forwarded instead of crashing mainstay and with it the container.
var forwarded = func() []os.Signal {
	skip := map[syscall.Signal]bool{
		unix.SIGKILL: true, unix.SIGSTOP: true,
		unix.SIGCHLD: true, unix.SIGURG: true, unix.SIGTTIN: true, unix.SIGTTOU: true, unix.SIGPIPE: true,
		unix.SIGPROF: true,
		32:           true, 33: true, 34: true,
	}
	var list []os.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		if !skip[s] && !inherited[s] {
			list = append(list, s)
		}
	}
	return list
}()

// Inherited returns the signals mainstay was started with ignored, and
// leaves ignored for itself and its children.
func Inherited() []syscall.Signal {
	var list []syscall.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		if inherited[s] {
			list = append(list, s)
		}
	}
	return list
}

// asksToStop reports whether sig asks for the container to stop: during
// start-up it aborts start-up, afterwards it arms the grace timer once
// forwarded.
func asksToStop(sig syscall.Signal) bool {
	return sig == unix.SIGTERM || sig == unix.SIGINT || sig == unix.SIGQUIT
}

// ParseSignal reads a signal given as a name with or without the SIG prefix,
// in any case ("TERM", "SIGTERM", "sigint"), or as a number ("15"). It
// accepts only signals that can be sent to main: not 0, and no number
// outside 1..64.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal number %d is not between 1 and 64", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q (want a name such as TERM or SIGINT, or a number)", s)
}

// SignalName is the conventional name of sig ("SIGTERM"), or its number.
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return strconv.Itoa(int(sig))
}
