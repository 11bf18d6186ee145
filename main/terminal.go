package mainproc

import (
	"io"
	"os"
	"runtime"
	"sync"

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

// Reclaim makes mainstay's own process group the terminal's foreground
// group again, as a shell does when a foreground job ends. Without it the
// terminal still names the finished job's group, and mainstay, now in the
// background, is stopped by SIGTTOU at its next log line under
// "stty tostop" (when it is not PID 1). tty nil does nothing.
func Reclaim(tty *os.File) error {
	if tty == nil {
		return nil
	}
	return setForeground(tty, unix.Getpgrp())
}

// ForegroundSafe returns a writer for f that mainstay can use while another
// job has the terminal. A write to a terminal from a background process
// group is stopped by SIGTTOU under "stty tostop", unless the writer blocks
// or ignores SIGTTOU. Ignoring it would leak into children, so, when f is a
// terminal, every write is made from one OS thread that keeps SIGTTOU
// blocked; otherwise f itself is returned. Writes are serialised.
func ForegroundSafe(f *os.File) io.Writer {
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return f
	}
	w := &ttyWriter{f: f, req: make(chan []byte), res: make(chan ttyResult)}
	go w.loop()
	return w
}

type ttyWriter struct {
	f   *os.File
	mu  sync.Mutex
	req chan []byte
	res chan ttyResult
}

type ttyResult struct {
	n   int
	err error
}

func (w *ttyWriter) loop() {
	// Never unlocked: the thread ends with the program, SIGTTOU blocked.
	runtime.LockOSThread()
	var block unix.Sigset_t
	block.Val[0] = 1 << (uint(unix.SIGTTOU) - 1)
	err := unix.PthreadSigmask(unix.SIG_BLOCK, &block, nil)
	for b := range w.req {
		if err != nil {
			w.res <- ttyResult{0, err}
			continue
		}
		n, err := w.f.Write(b)
		w.res <- ttyResult{n, err}
	}
}

func (w *ttyWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.req <- b
	r := <-w.res
	return r.n, r.err
}
