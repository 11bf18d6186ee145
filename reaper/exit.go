package reaper

import (
	"errors"
	"fmt"
	"io/fs"
	"os/exec"

	"golang.org/x/sys/unix"
)

// Exit is how a child process ended.
type Exit struct {
	status unix.WaitStatus
	// cancelled is set when [Reaper.Run] killed the process because its
	// context was done before it exited.
	cancelled bool
}

// Cancelled reports whether [Reaper.Run] killed the process because its
// context was done first: a process that exited on its own an instant
// before its deadline did not time out.
func (e Exit) Cancelled() bool { return e.cancelled }

// ExitedWith is the Exit of a process that exited with status code
// (0–255).
func ExitedWith(code int) Exit { return Exit{status: unix.WaitStatus(code&0xff) << 8} }

// KilledBy is the Exit of a process that signal sig killed.
func KilledBy(sig unix.Signal) Exit { return Exit{status: unix.WaitStatus(sig)} }

// Code is the exit code a shell would report for the process: its exit
// status, or 128+N when signal N killed it.
func (e Exit) Code() int {
	if e.status.Signaled() {
		return 128 + int(e.status.Signal())
	}
	return e.status.ExitStatus()
}

// Success reports whether the process exited with status 0.
func (e Exit) Success() bool { return e.status.Exited() && e.status.ExitStatus() == 0 }

// Signaled reports whether a signal killed the process.
func (e Exit) Signaled() bool { return e.status.Signaled() }

// String describes the exit as "exit status N" or "killed by SIGNAME".
func (e Exit) String() string {
	if e.status.Signaled() {
		if name := unix.SignalName(e.status.Signal()); name != "" {
			return "killed by " + name
		}
		return fmt.Sprintf("killed by signal %d", int(e.status.Signal()))
	}
	return fmt.Sprintf("exit status %d", e.status.ExitStatus())
}

// StartFailureCode is the exit code a shell reports when it cannot run a
// command: 127 when the program does not exist, 126 when it exists but
// cannot be executed (permission denied, not an executable format, a
// directory). Any other error gives 126 as well.
func StartFailureCode(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return 127
	}
	return 126
}
