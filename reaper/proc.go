package reaper

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Stat is what the program reads of a process in /proc/PID/stat. It is the
// program's one reader of that file: the reaper's sweep, the readiness
// ancestry check and "mainstay health" all go through [ReadStat].
type Stat struct {
	PID int
	// Comm is the command name (at most 15 bytes, from the executable's
	// file name or argv[0] as set by prctl or /proc/PID/comm). It may
	// hold spaces and parentheses, so the fields after it are read after
	// the file's last ')'.
	Comm string
	// State is the state letter: R running, S sleeping, D uninterruptible
	// sleep, T stopped, t traced, Z zombie, X dead, and so on.
	State byte
	PPID  int
	PGRP  int
	// Flags are the kernel's PF_* flags of the process.
	Flags uint64
	// Start is when the process started, in clock ticks after boot. A
	// PID and its Start name one process across PID reuse.
	Start uint64
}

// Exited reports whether the process has exited (a zombie, or dead while
// it is being reaped): it runs no more code and holds only its PID.
func (s Stat) Exited() bool { return s.State == 'Z' || s.State == 'X' }

// pfExiting is PF_EXITING, set in the flags of a process once it has
// begun to exit (a fatal signal acted on, or exit called), before it
// frees its memory and files.
const pfExiting = 0x4

// Exiting reports whether the process has begun to exit but has not
// finished: a signal that kills it has taken effect.
func (s Stat) Exiting() bool { return s.Flags&pfExiting != 0 && !s.Exited() }

// errStat is returned for a /proc/PID/stat that does not parse.
var errStat = errors.New("malformed /proc/PID/stat")

// ReadStat reads /proc/PID/stat. Once the process is gone (reaped) the
// error satisfies errors.Is(err, fs.ErrNotExist).
func ReadStat(pid int) (Stat, error) {
	var buf [512]byte // the file is about 300 bytes; comm is at most 64
	b, err := readProc(pid, "stat", buf[:])
	if err != nil {
		return Stat{}, err
	}
	return parseStat(pid, b)
}

// parseStat parses the contents b of /proc/PID/stat: "PID (COMM) STATE
// PPID PGRP SESSION ...", where COMM may hold any byte but NUL, ')' and
// spaces included.
func parseStat(pid int, b []byte) (Stat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, errStat
	}
	// f[0] is field 3 of proc(5), the state; f[6] is field 9, the flags;
	// f[19] is field 22, starttime.
	f := bytes.Fields(b[end+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, errStat
	}
	s := Stat{PID: pid, Comm: string(b[open+1 : end]), State: f[0][0]}
	var err1, err2, err3, err4 error
	s.PPID, err1 = strconv.Atoi(string(f[1]))
	s.PGRP, err2 = strconv.Atoi(string(f[2]))
	s.Flags, err3 = strconv.ParseUint(string(f[6]), 10, 64)
	s.Start, err4 = strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return Stat{}, errStat
	}
	return s, nil
}

// maxCommand bounds the command line [Stat.Command] returns, in bytes.
const maxCommand = 200

// Command returns the process's command line for a log line: the arguments
// of /proc/PID/cmdline joined by spaces, cut to about 200 bytes (ending in
// "..."). A process without one (a zombie, a kernel thread) or one that is
// gone gives its Comm.
func (s Stat) Command() string {
	// One byte more than a cut line can show: a full buffer means the
	// file has more (it ends with a NUL).
	var buf [maxCommand + 2]byte
	raw, err := readProc(s.PID, "cmdline", buf[:])
	b := bytes.TrimRight(raw, "\x00")
	if err != nil || len(b) == 0 {
		return s.Comm
	}
	cut := len(raw) == len(buf) || len(b) > maxCommand
	if cut {
		b = b[:min(len(b), maxCommand)]
		// Not in the middle of a character.
		i := len(b) - 1
		for i > 0 && len(b)-i < utf8.UTFMax && !utf8.RuneStart(b[i]) {
			i--
		}
		if !utf8.FullRune(b[i:]) {
			b = b[:i]
		}
	}
	for i, c := range b {
		if c == 0 {
			b[i] = ' '
		}
	}
	if cut {
		return string(b) + "..."
	}
	return string(b)
}

// readProc reads /proc/PID/name into buf, up to len(buf) bytes, and
// returns what it read. It makes three system calls, not os.ReadFile's
// five or so: a sweep reads the stat of every process on the host.
func readProc(pid int, name string, buf []byte) ([]byte, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/" + name
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ESRCH: // gone between open and read
			return nil, &fs.PathError{Op: "read", Path: path, Err: os.ErrNotExist}
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		case m == 0:
			return buf[:n], nil
		}
		n += m
	}
	return buf[:n], nil
}
