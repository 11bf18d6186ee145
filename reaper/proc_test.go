package reaper

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	// The kernel's format: pid (comm) state ppid pgrp session tty_nr tpgid
	// flags ... starttime (field 22) ...
	const tail = " S 41 40 40 0 -1 4194560 90 0 0 0 0 0 0 0 20 0 1 0 123456 2457600 139 18446744073709551615"
	for _, tc := range []struct {
		name, stat string
		want       Stat
		bad        bool
	}{
		{name: "plain", stat: "42 (sleep)" + tail, want: Stat{PID: 42, Comm: "sleep", State: 'S', PPID: 41, PGRP: 40, Flags: 4194560, Start: 123456}},
		{name: "spaces and parentheses", stat: "42 (a) (b c) d)" + tail, want: Stat{PID: 42, Comm: "a) (b c) d", State: 'S', PPID: 41, PGRP: 40, Flags: 4194560, Start: 123456}},
		{name: "a state and a number in the name", stat: "42 (x) R 1 2 )" + tail, want: Stat{PID: 42, Comm: "x) R 1 2 ", State: 'S', PPID: 41, PGRP: 40, Flags: 4194560, Start: 123456}},
		{name: "empty name", stat: "42 ()" + tail, want: Stat{PID: 42, State: 'S', PPID: 41, PGRP: 40, Flags: 4194560, Start: 123456}},
		{name: "no parenthesis", stat: "42 sleep" + tail, bad: true},
		{name: "cut short", stat: "42 (sleep) S 41 40 40 0", bad: true},
		{name: "not a number", stat: "42 (sleep) S x" + tail[4:], bad: true},
		{name: "empty", stat: "", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat(42, []byte(tc.stat+"\n"))
			if tc.bad {
				if err == nil {
					t.Errorf("parsed %+v, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// startSleeper starts "sleep 1000" through a symlink named name, so that
// its comm is name, and returns it; it is killed when the test ends.
func startSleeper(t *testing.T, name string) (*Proc, string) {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(sleep, link); err != nil {
		t.Fatal(err)
	}
	p, err := shared.Start(Spec{Argv: []string{link, "1000"}, Env: os.Environ()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Signal(unix.SIGKILL)
		p.Wait()
	})
	return p, link
}

// TestReadStat reads a real child whose command name holds spaces and
// parentheses: a sleep started through a symlink named "x) (y z" (the
// kernel names a process after the file it executes).
func TestReadStat(t *testing.T) {
	const name = "x) (y z"
	p, link := startSleeper(t, name)
	self, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var s Stat
	waitFor(t, 5*time.Second, "the sleeper to sleep", func() bool {
		s, err = ReadStat(p.PID())
		return err == nil && s.State == 'S'
	})
	want := Stat{PID: p.PID(), Comm: name, State: 'S', PPID: os.Getpid(), PGRP: p.PID(), Flags: s.Flags, Start: s.Start}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	if s.Start < self.Start || s.Exited() || s.Exiting() {
		t.Errorf("start %d (ours %d), exited %v, exiting %v", s.Start, self.Start, s.Exited(), s.Exiting())
	}
	if got := s.Command(); got != link+" 1000" {
		t.Errorf("Command() = %q, want %q", got, link+" 1000")
	}

	p.Signal(unix.SIGKILL)
	p.Wait()
	if s, err := ReadStat(p.PID()); !errors.Is(err, fs.ErrNotExist) {
		// The PID may have been reused already, by another process.
		if err != nil || s.Start == want.Start {
			t.Errorf("after the reap: %+v, %v; want fs.ErrNotExist", s, err)
		}
	}
}

// TestCommandCut: a command line longer than a log line should carry is
// cut, on a character boundary, and says so.
func TestCommandCut(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes
	// sh, not sleep, takes the long word: sleep refuses it as a duration
	// and exits at once, which lost the race with the test once.
	shell, err := exec.LookPath("sh")
	if err != nil {
		t.Skip(err)
	}
	link := filepath.Join(t.TempDir(), "sh")
	if err := os.Symlink(shell, link); err != nil {
		t.Fatal(err)
	}
	p, err := shared.Start(Spec{Argv: []string{link, "-c", "sleep 1000; :", long}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.SignalGroup(unix.SIGKILL); p.Wait() })
	var got string
	// Until the child has exec'd, its command line is not sleep's yet.
	waitFor(t, 10*time.Second, "the sleeper's exec", func() bool {
		s, err := ReadStat(p.PID())
		if err != nil {
			t.Fatal(err)
		}
		got = s.Command()
		return strings.HasPrefix(got, link)
	})
	if !strings.HasPrefix(got, link+" -c sleep 1000; : éé") || !strings.HasSuffix(got, "...") {
		t.Errorf("Command() = %q, want %q cut, ending in ...", got, link+" -c sleep 1000; : "+long)
	}
	if len(got) > maxCommand+len("...") || !utf8.ValidString(got) {
		t.Errorf("Command() = %q: %d bytes (want at most %d), valid UTF-8: %v", got, len(got), maxCommand+3, utf8.ValidString(got))
	}
}

// TestCommandZombie: a process that has exited has no command line left;
// Command gives its name instead.
func TestCommandZombie(t *testing.T) {
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	// exec replaces sh by sleep, which never reaps the true sh started;
	// nothing sh waits for (mv) may come before it, or sh reaps true.
	p, err := shared.Start(Spec{Argv: []string{"sh", "-c", `"$1" & echo $! > "$2/pid"; exec sleep 1000`, "sh", truePath, dir}, Env: os.Environ()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Wait()
	defer p.SignalGroup(unix.SIGKILL)
	var zombie int
	waitFor(t, 5*time.Second, "the zombie's PID", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "pid"))
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		_, err = fmt.Sscan(string(b), &zombie)
		return err == nil
	})
	var s Stat
	waitFor(t, 5*time.Second, "true to exit", func() bool {
		s, err = ReadStat(zombie)
		return err == nil && s.Exited()
	})
	if s.Comm != "true" || s.PPID != p.PID() || s.Exiting() {
		t.Errorf("zombie: %+v, want comm true, parent %d, not exiting", s, p.PID())
	}
	if got := s.Command(); got != "true" {
		t.Errorf("Command() of a zombie = %q, want its comm %q", got, "true")
	}
}
