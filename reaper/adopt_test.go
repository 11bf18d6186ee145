package reaper

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// forkAway starts script (sh -c, with the directory as $0) as a start
// command that forks something away and writes its PID to $0/pid; it
// returns the start command, once exited, and that PID, which is
// killed when the test ends, and the directory.
func forkAway(t *testing.T, script string) (*Proc, int, string) {
	t.Helper()
	dir := t.TempDir()
	start, err := shared.Start(Spec{Name: "start " + t.Name(), Argv: []string{"sh", "-c", script, dir}})
	if err != nil {
		t.Fatal(err)
	}
	if exit := start.Wait(); !exit.Success() {
		t.Fatalf("start command: %s", exit)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	return start, pid, dir
}

// TestAdopt: the reaper adopts the process a start command left behind
// (reparented to the test binary, a subreaper); its exit status is kept
// for Wait, not discarded as an orphan's; SignalGroup reaches it alone,
// as it does not lead its group.
func TestAdopt(t *testing.T) {
	if shared.PID1() || !shared.Subreaper() {
		t.Fatalf("the test binary is not a subreaper: PID1 %v, Subreaper %v", shared.PID1(), shared.Subreaper())
	}
	start, pid, _ := forkAway(t, `sleep 1000 & echo $! > "$0/pid"`)
	p, err := shared.Adopt(pid, Trust{Name: "daemon", After: start.StartTicks(), UID: os.Getuid()})
	if err != nil {
		t.Fatalf("Adopt(%d): %v", pid, err)
	}
	if p.PID() != pid || p.StartTicks() == 0 {
		t.Errorf("adopted PID %d start %d, want %d and a start", p.PID(), p.StartTicks(), pid)
	}
	if _, err := shared.Adopt(pid, Trust{After: start.StartTicks(), UID: os.Getuid()}); err == nil || !strings.Contains(err.Error(), "is daemon, already supervised") {
		t.Errorf("second Adopt: %v, want already supervised", err)
	}
	if err := p.SignalGroup(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exit := p.Wait(); exit.String() != "killed by SIGTERM" {
		t.Errorf("adopted process's exit %s, want killed by SIGTERM", exit)
	}
}

// TestAdoptRefuses: a PID is believed only when it is an unregistered
// child that started after the start command, as the user wanted; a
// refused process is never signalled.
func TestAdoptRefuses(t *testing.T) {
	start, pid, _ := forkAway(t, `sleep 1000 & echo $! > "$0/pid"`)
	trust := Trust{After: start.StartTicks(), UID: os.Getuid()}
	running, err := shared.Start(Spec{Name: "registered child", Argv: []string{"sleep", "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { running.Signal(unix.SIGKILL); running.Wait() })
	st, err := ReadStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		pid   int
		trust Trust
		want  string
	}{
		{"not a child", os.Getppid(), trust, "is not a child of mainstay"},
		{"registered", running.PID(), trust, "is registered child, already supervised"},
		{"started before the start command", pid, Trust{After: st.Start + 1, UID: os.Getuid()}, "started before the start command"},
		{"another user", pid, Trust{After: trust.After, UID: 65534}, fmt.Sprintf("runs as uid %d, not 65534", os.Getuid())},
		{"no such process", 1<<22 + 1, trust, "does not exist"},
		{"pid 1", 1, trust, "is not a process mainstay may adopt"},
		{"pid 0", 0, trust, "is not a process mainstay may adopt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := shared.Adopt(tc.pid, tc.trust)
			var refused *RefusedError
			if !errors.As(err, &refused) || refused.PID != tc.pid || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Adopt(%d) = %v, want a refusal saying %q", tc.pid, err, tc.want)
			}
		})
	}
	if !alive(pid) || !alive(running.PID()) {
		t.Error("a refused process was signalled")
	}
}

// TestAdoptedLeaderGroup: an adopted process that leads its own process
// group (setsid) has the group killed when it exits, and what that ends is
// logged by PID and command.
func TestAdoptedLeaderGroup(t *testing.T) {
	start, pid, dir := forkAway(t, `setsid sh -c 'sleep 1000 & echo $! > "$0/member"; echo $$ > "$0/pid.tmp"; mv "$0/pid.tmp" "$0/pid"; wait' "$0" &
		while [ ! -e "$0/pid" ]; do sleep 0.01; done`)
	p, err := shared.Adopt(pid, Trust{Name: "group daemon", After: start.StartTicks(), UID: os.Getuid()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "member"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	t.Cleanup(func() { unix.Kill(want, unix.SIGKILL) })
	if err := unix.Kill(pid, unix.SIGKILL); err != nil { // the leader alone
		t.Fatal(err)
	}
	p.Wait()
	var member float64
	for _, l := range testLog.find("killing what group daemon left in its process group") {
		if l["leader"] == float64(pid) {
			member, _ = l["pid"].(float64)
		}
	}
	if int(member) != want {
		t.Fatalf("logged member %v, want %d: %v", member, want, testLog.find("killing what group daemon left in its process group"))
	}
	waitFor(t, 10*time.Second, "the member of the group gone", func() bool { return !alive(int(member)) })
}
