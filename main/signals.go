package mainproc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwarded lists every signal mainstay subscribes to and passes on: all
// catchable signals except SIGCHLD (the reaper's), SIGURG (Go's preemption
// signal), SIGTTIN and SIGTTOU (job control aimed at mainstay itself: with a
// handler, a background write under "stty tostop" livelocks), SIGPIPE (it
// only means mainstay's own write failed), SIGPROF (the profiler's) and
// signals 32 to 34, which the Go runtime keeps for itself and never
// delivers. The fault signals (SIGSEGV, SIGABRT, ...) are subscribed too: a
// real fault in mainstay still crashes it, but one sent with kill is
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
		if !skip[s] {
			list = append(list, s)
		}
	}
	return list
}()

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
