package reaper

import (
	"context"
	"io"
	"os"
	"syscall"
	"time"
)

// Spec describes one child completely; [Reaper.Start] is the only code that
// turns it into an [exec.Cmd].
type Spec struct {
	// Name names the child in log lines ("left running by NAME"):
	// "sidecar redis", "helper migrate". Empty, Argv[0] stands for it.
	Name string
	// Argv is the program and its arguments; the program is looked up in
	// mainstay's own PATH when it has no slash, as [exec.Command] does.
	Argv []string
	// Env is the child's whole environment: nil is an empty one. Callers
	// compute it; mainstay's own is never inherited implicitly.
	Env []string
	// Dir is the working directory; empty is mainstay's own.
	Dir string
	// Credential is the user the child runs as; nil is mainstay's own.
	Credential *syscall.Credential
	// Stdin is the child's standard input; nil is /dev/null.
	Stdin *os.File
	// Terminal, when not nil, is the controlling terminal: the child
	// becomes its foreground job (Foreground and Ctty in
	// [syscall.SysProcAttr]).
	Terminal *os.File
	// Stdout and Stderr receive the child's output. An *os.File is given
	// to the child as is (unless Prefix is set), nil is /dev/null, and any
	// other writer is fed from a pipe that the reaper copies itself. The
	// same writer for both gets one pipe.
	Stdout, Stderr io.Writer
	// Prefix, when not empty, is written before every line of the
	// child's stdout and stderr, which then always go through a pipe (a
	// file too). Each run has a prefixer of its own: its unfinished last
	// line is written, prefixed and ended by a newline, when its pipe is
	// closed. Whole lines go out in writes of at most PIPE_BUF (4096)
	// bytes, as many as one read of the pipe brought, never held back to
	// fill a write; a longer line goes alone. A line longer than 64 KiB is
	// written in pieces of 64 KiB, each ended by an added newline.
	Prefix string
	// KillGroup makes the child's process group die with it: when the
	// child exits, whatever it left in its group is sent SIGKILL before
	// the exit is reaped and reported, while the child's zombie still
	// holds the group ID so it cannot have been reused. Descendants that
	// left the group (setsid, daemons) are out of its reach.
	KillGroup bool
	// OutputWait bounds how long the output pipes are still read once the
	// child has exited (0: [DefaultOutputWait]), or, as [KeepOutput],
	// keeps them open until [Proc.CloseOutput].
	OutputWait time.Duration
	// Started, when set, is called with the child's PID once it has
	// started, before [Reaper.Run] waits for it: how a task's owner learns
	// the PID of a child that Run starts and waits for in one call.
	Started func(pid int)
}

const (
	// DefaultOutputWait is how long, at most, a child's output pipes are
	// still read after its exit has been reaped, when its Spec says 0.
	// What the child wrote before it exited is in the pipe by then, and is
	// copied at once; the wait only bounds what descendants that still
	// hold the pipe write meanwhile. Then the pipes are closed, whoever
	// holds them, so a descendant left running can never hold the exit up
	// by more than this (os/exec's WaitDelay, counted from the exit).
	DefaultOutputWait = 100 * time.Millisecond

	// KeepOutput, as a Spec's OutputWait, keeps the output pipes open
	// after the child's exit, for whatever inherited them, until the
	// caller calls [Proc.CloseOutput]: main's output is copied until the
	// final sweep has ended every process that could write it.
	KeepOutput time.Duration = -1
)

// Runner runs a child to completion and returns how it ended; when ctx is
// done first it kills the child's process group. *Reaper satisfies it;
// helpers and readiness probes start their children through one.
type Runner interface {
	Run(ctx context.Context, s Spec) (Exit, error)
}
