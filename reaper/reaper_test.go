package reaper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// shared is the test binary's one reaper (a program may start only one).
var shared *Reaper

// inSubprocess is set in a copy of the test binary started by runIsolated.
const inSubprocess = "REAPER_TEST_SUBPROCESS"

func TestMain(m *testing.M) {
	r, err := Start(slog.New(slog.NewJSONHandler(testLog, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared = r
	os.Exit(m.Run())
}

// runIsolated runs the named test in a fresh copy of the test binary: as
// PID 1 of a new PID namespace when pid1 is set, else as a plain child
// (which makes itself a subreaper). Tests that sweep or count every child
// of the process need a process of their own.
func runIsolated(t *testing.T, name string, pid1 bool) {
	t.Helper()
	args := []string{os.Args[0], "-test.run=^" + name + "$", "-test.v", "-test.count=1"}
	if pid1 {
		if os.Geteuid() != 0 {
			t.Skip("needs root for unshare --pid")
		}
		args = append([]string{"unshare", "--pid", "--fork", "--mount-proc"}, args...)
	}
	// Through the shared reaper: os/exec's own Wait would race with it.
	var buf bytes.Buffer
	spec := Spec{Argv: args, Env: append(os.Environ(), inSubprocess+"=1"), Stdout: &buf, Stderr: &buf}
	var err error
	if p, serr := shared.Start(spec); serr != nil {
		err = serr
	} else if code := p.Wait().Code(); code != 0 {
		err = fmt.Errorf("exit code %d", code)
	}
	out := buf.Bytes()
	if err == nil && bytes.Contains(out, []byte("--- SKIP: "+name)) {
		t.Skipf("%s (pid1=%v) skipped:\n%s", name, pid1, out)
	}
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+name)) {
		t.Fatalf("%s (pid1=%v): %v\n%s", name, pid1, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "_test.go:") { // the isolated test's own t.Log lines
			t.Log(strings.TrimSpace(line))
		}
	}
}

// sh is the Spec of sh -c script, with args as $0, $1...
func sh(script string, args ...string) Spec {
	return Spec{Argv: append([]string{"sh", "-c", script}, args...)}
}

func isolated() bool { return os.Getenv(inSubprocess) != "" }

// children lists our direct children and their /proc state letter.
func children(t *testing.T) map[int]byte {
	t.Helper()
	out := map[int]byte{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
		if pp, _ := strconv.Atoi(string(f[1])); pp == os.Getpid() {
			out[pid] = f[0][0]
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
	return f[0][0] != 'Z'
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		code   int
		str    string
	}{
		{"zero", "exit 0", 0, "exit status 0"},
		{"status", "exit 42", 42, "exit status 42"},
		{"term", "kill -TERM $$", 143, "killed by SIGTERM"},
		{"kill", "kill -KILL $$", 137, "killed by SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exit, err := shared.Run(context.Background(), sh(tc.script))
			if err != nil {
				t.Fatal(err)
			}
			if exit.Code() != tc.code || exit.String() != tc.str || exit.Success() != (tc.code == 0) {
				t.Errorf("got code %d %q success=%v, want %d %q", exit.Code(), exit, exit.Success(), tc.code, tc.str)
			}
		})
	}
}

func TestStartFailureCode(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		argv string
		code int
	}{
		{"not in PATH", "no-such-program-xyz", 127},
		{"no such path", filepath.Join(dir, "missing"), 127},
		{"not executable", noexec, 126},
		{"directory", dir, 126},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := shared.Run(context.Background(), Spec{Argv: []string{tc.argv}})
			if err == nil {
				t.Fatal("started")
			}
			if got := StartFailureCode(err); got != tc.code {
				t.Errorf("StartFailureCode(%v) = %d, want %d", err, got, tc.code)
			}
		})
	}
}

// TestRunCancelKillsGroup: cancelling Run kills the child's whole process
// group, grandchildren included.
func TestRunCancelKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Exit)
	go func() {
		exit, err := shared.Run(ctx, sh("sleep 100 & echo $! > "+pidFile+"; wait"))
		if err != nil {
			t.Error(err)
		}
		done <- exit
	}()
	var gc int
	waitFor(t, 5*time.Second, "grandchild pid", func() bool {
		b, _ := os.ReadFile(pidFile)
		gc, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return gc > 0
	})
	cancel()
	if exit := <-done; exit.Code() != 137 {
		t.Errorf("child: %s, want killed by SIGKILL", exit)
	}
	waitFor(t, 5*time.Second, "grandchild to die", func() bool { return !alive(gc) })
}

// TestSignalAfterPIDReuse: once a child has been reaped, its PID (and so
// its process-group ID) may belong to a new process; Signal and SignalGroup
// on the old Proc must not reach that process. As PID 1 of a fresh PID
// namespace the test makes the kernel reuse the PID: it sets ns_last_pid to
// the reaped PID - 1 and at once starts a sleeper, which then takes the
// reaped PID unless another fork or a new runtime thread came first (then it
// tries again).
func TestSignalAfterPIDReuse(t *testing.T) {
	if !isolated() {
		runIsolated(t, "TestSignalAfterPIDReuse", true)
		return
	}
	const tries = 20
	for try := 1; try <= tries; try++ {
		old, err := shared.Start(Spec{Argv: []string{"true"}})
		if err != nil {
			t.Fatal(err)
		}
		old.Wait()
		pid := old.PID()
		// ns_last_pid is the last PID handed out in this namespace; the
		// next fork gets the one after it.
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Skipf("cannot set ns_last_pid (kernel without checkpoint/restore?): %v", err)
		}
		sleeper, err := shared.Start(Spec{Argv: []string{"sleep", "100"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sleeper.Signal(unix.SIGKILL) // also ends a stopped sleeper
			sleeper.Wait()
		})
		if sleeper.PID() != pid {
			t.Logf("try %d: the sleeper got PID %d, not the reaped %d", try, sleeper.PID(), pid)
			continue
		}

		if err := old.Signal(unix.SIGTERM); err != nil {
			t.Errorf("Signal after exit: %v", err)
		}
		if err := old.SignalGroup(unix.SIGKILL); err != nil {
			t.Errorf("SignalGroup after exit: %v", err)
		}
		// Either signal, had it reached the sleeper (which has no handler),
		// would have marked it as dying before kill(2) returned, and a
		// dying process ignores SIGSTOP. So the sleeper now either stops,
		// or dies because a signal meant for the old child reached it.
		if err := sleeper.Signal(unix.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the sleeper to stop or die", func() bool {
			select {
			case <-sleeper.Done():
				return true
			default:
				return sleeper.Stopped()
			}
		})
		select {
		case <-sleeper.Done():
			t.Fatalf("the sleeper that took the reaped PID %d was killed: %s", pid, sleeper.Wait())
		default:
		}
		t.Logf("try %d: the sleeper took the reaped PID %d and survived both signals", try, pid)
		return
	}
	t.Skipf("in %d tries, the sleeper never got the reaped PID", tries)
}

// TestStoppedState: WUNTRACED and WCONTINUED reports keep the child
// registered and track whether it is stopped.
func TestStoppedState(t *testing.T) {
	p, err := shared.Start(sh("kill -STOP $$; exit 7"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "child to stop", p.Stopped)
	if err := p.Signal(unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if exit := p.Wait(); exit.Code() != 7 {
		t.Errorf("exit %s, want exit status 7", exit)
	}
	if p.Stopped() {
		t.Error("still stopped after exit")
	}
}

func TestStartTwice(t *testing.T) {
	if _, err := Start(slog.Default()); err == nil {
		t.Fatal("second Start succeeded")
	}
}

// TestStorm: 1000 short-lived children started from 8 goroutines at once,
// each leaving an orphan behind, while the reaper reaps those orphans: every
// child's own status reaches its owner, and no zombie is left.
func TestStorm(t *testing.T) {
	if !isolated() {
		t.Run("subreaper", func(t *testing.T) { runIsolated(t, "TestStorm", false) })
		t.Run("pid1", func(t *testing.T) { runIsolated(t, "TestStorm", true) })
		return
	}
	const workers, each = 8, 125
	var wg sync.WaitGroup
	var mu sync.Mutex
	wrong := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				want := (w*each + i) % 256
				// The background subshell outlives sh and is reparented to us.
				exit, err := shared.Run(context.Background(), sh(fmt.Sprintf("(exit 9) & exit %d", want)))
				if err != nil || exit.Code() != want {
					mu.Lock()
					wrong++
					mu.Unlock()
					t.Errorf("child wanted exit %d: got %v, err %v", want, exit, err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("pid %d: %d children, %d wrong statuses", os.Getpid(), workers*each, wrong)
	waitFor(t, 10*time.Second, "every orphan to be reaped", func() bool { return len(children(t)) == 0 })
}

// TestNegativeControl shows the race the registry exists for: with the
// reaper running, os/exec's own Wait loses statuses to it. If this stopped
// failing, TestStorm would no longer prove anything. The reaper is tried
// both ways it waits: idle (no child of its own: on SIGCHLD) and blocked
// in waitid (while a registered child lives).
func TestNegativeControl(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(map[bool]string{false: "idle", true: "waitid"}[busy], func(t *testing.T) {
			if busy {
				p, err := shared.Start(Spec{Argv: []string{"sleep", "100"}})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Wait()
				defer p.Signal(unix.SIGKILL)
			}
			lost := 0
			for i := 0; i < 200; i++ {
				cmd := exec.Command("true")
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				var se *os.SyscallError
				if err := cmd.Wait(); errors.As(err, &se) && errors.Is(err, syscall.ECHILD) {
					lost++
				}
			}
			t.Logf("os/exec Wait lost %d of 200 statuses to the reaper", lost)
			if lost == 0 {
				t.Fatal("no status lost: the race this package prevents did not happen, so the storm test proves nothing")
			}
		})
	}
}

// TestZombieDetector checks the storm's zombie check against a real zombie:
// a child whose parent does not reap it.
func TestZombieDetector(t *testing.T) {
	if !isolated() {
		runIsolated(t, "TestZombieDetector", false)
		return
	}
	// exec replaces sh by sleep, which never reaps the child sh started.
	cmd := sh("true & exec sleep 100")
	p, err := shared.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer p.SignalGroup(unix.SIGKILL)
	found := func() bool {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
			if pp, _ := strconv.Atoi(string(f[1])); pp == p.PID() && f[0][0] == 'Z' {
				return true
			}
		}
		return false
	}
	waitFor(t, 5*time.Second, "the unreaped zombie to show", found)
}

// TestSweep: leftovers — a plain child, one that ignores SIGTERM, and a
// setsid daemon whose parent exited — are all gone when Sweep returns, in
// both modes; the TERM-ignoring one only after the grace period.
func TestSweep(t *testing.T) {
	if !isolated() {
		t.Run("subreaper", func(t *testing.T) { runIsolated(t, "TestSweep", false) })
		t.Run("pid1", func(t *testing.T) { runIsolated(t, "TestSweep", true) })
		return
	}
	dir := t.TempDir()
	script := fmt.Sprintf(`sleep 1000 & echo $! > %[1]s/plain
sh -c 'trap "" TERM; echo $$ > %[1]s/stubborn.tmp; mv %[1]s/stubborn.tmp %[1]s/stubborn; while :; do sleep 0.05; done' &
setsid sh -c 'echo $$ > %[1]s/daemon.tmp; mv %[1]s/daemon.tmp %[1]s/daemon; exec sleep 1000' &
wait`, dir)
	p, err := shared.Start(sh(script))
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for _, name := range []string{"plain", "stubborn", "daemon"} {
		waitFor(t, 5*time.Second, name+" pid file", func() bool {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			pids[name], _ = strconv.Atoi(strings.TrimSpace(string(b)))
			return pids[name] > 0
		})
	}
	// The parent exits: its children become our orphans.
	p.Signal(unix.SIGKILL)
	p.Wait()

	const grace = 300 * time.Millisecond
	start := time.Now()
	shared.Sweep(start.Add(grace))
	took := time.Since(start)
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) survived the sweep", name, pid)
		}
	}
	if took < grace {
		t.Errorf("sweep took %s: the TERM-ignoring process cannot have been killed by SIGKILL after grace %s", took, grace)
	}
	if n := len(children(t)); n != 0 {
		t.Errorf("%d children left after Sweep", n)
	}
	if _, err := shared.Start(Spec{Argv: []string{"true"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Sweep: %v, want ErrClosed", err)
	}
}

// TestSweepNothingLeft returns at once when there is nothing to sweep.
func TestSweepNothingLeft(t *testing.T) {
	if !isolated() {
		runIsolated(t, "TestSweepNothingLeft", false)
		return
	}
	start := time.Now()
	shared.Sweep(time.Now().Add(time.Hour))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Sweep with no children took %s", d)
	}
}

// TestExitRealTimeSignal: a signal without a conventional name is named by
// its number.
func TestExitRealTimeSignal(t *testing.T) {
	exit, err := shared.Run(context.Background(), sh("kill -40 $$"))
	if err != nil {
		t.Fatal(err)
	}
	if exit.Code() != 168 || exit.String() != "killed by signal 40" {
		t.Errorf("got %d %q, want 168 \"killed by signal 40\"", exit.Code(), exit)
	}
}

// killPending reports whether pid has a SIGKILL pending (sent, not yet
// acted on), from /proc/PID/status.
func killPending(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "ShdPnd" || k == "SigPnd" {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && n&(1<<(unix.SIGKILL-1)) != 0 {
				return true
			}
		}
	}
	return false
}

// exiting reports whether pid is on its way out (PF_EXITING in the flags
// of /proc/PID/stat): a SIGKILL already acted on, not pending any more.
func exiting(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:]) // state, ppid, pgrp, session, tty, tpgid, flags
	flags, err := strconv.ParseUint(string(f[6]), 10, 64)
	return err == nil && flags&0x4 != 0
}

// TestKillGroup: when a KillGroup child exits, what it left in its process
// group is dead by the time its exit is reported; without KillGroup, the
// same leftover lives on.
func TestKillGroup(t *testing.T) {
	for _, group := range []bool{true, false} {
		t.Run(fmt.Sprint("group=", group), func(t *testing.T) {
			dir := t.TempDir()
			spec := sh(`sleep 1000 & echo $! > "$0/left.tmp"; mv "$0/left.tmp" "$0/left"; exit 3`, dir)
			spec.KillGroup = group
			p, err := shared.Start(spec)
			if err != nil {
				t.Fatal(err)
			}
			if code := p.Wait().Code(); code != 3 {
				t.Errorf("exit code %d, want 3", code)
			}
			b, err := os.ReadFile(filepath.Join(dir, "left"))
			if err != nil {
				t.Fatal(err)
			}
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
			if group && alive(pid) && !killPending(pid) && !exiting(pid) {
				t.Error("the leftover of a KillGroup child is alive, with no SIGKILL pending, once its leader's exit is reported")
			}
			if !group && !alive(pid) {
				t.Error("the leftover of a child without KillGroup died with its leader")
			}
		})
	}
}

// TestRunStarted: Run tells Spec.Started the child's PID before it waits.
func TestRunStarted(t *testing.T) {
	dir := t.TempDir()
	var pid int
	exit, err := shared.Run(context.Background(), Spec{
		Argv:    []string{"sh", "-c", `echo $$ > "$0/pid"`, dir},
		Started: func(p int) { pid = p },
	})
	if err != nil || !exit.Success() {
		t.Fatalf("Run: %v, %v", exit, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(b)); strconv.Itoa(pid) != want {
		t.Errorf("Started got PID %d, the child was %s", pid, want)
	}
}
