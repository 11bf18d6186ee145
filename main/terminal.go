package mainproc

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// OpenTerminal returns the controlling terminal when stdin is a terminal and
// job control is possible on it, or nil. The caller owns the file; children
// started in the foreground use it as their Ctty.
func OpenTerminal() *os.File {
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err != nil {
		return nil // stdin is not a terminal: no job control, as with "docker run" without -t
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil // no controlling terminal
	}
	if _, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP); err != nil {
		tty.Close()
		return nil
	}
	return tty
}

// setForeground makes pgid the foreground process group of tty. The kernel
// sends SIGTTOU to a background caller of tcsetpgrp, and refuses outright
// when the caller's group is orphaned (as PID 1's is), unless SIGTTOU is
// blocked or ignored. Ignoring it would leak into children, so it is blocked
// on this thread only, as bash's give_terminal_to does.
func setForeground(tty *os.File, pgid int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var block, old unix.Sigset_t
	block.Val[0] = 1 << (uint(unix.SIGTTOU) - 1)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &block, &old); err != nil {
		return err
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return unix.IoctlSetPointerInt(int(tty.Fd()), unix.TIOCSPGRP, pgid)
}
