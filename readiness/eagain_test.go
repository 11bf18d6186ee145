package readiness_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper"
)

// The tests re-run this test binary as a helper process, selected by
// helperEnv: the os/exec helperCommand pattern.
const helperEnv = "MAINSTAY_READINESS_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		code := m.Run()
		if copyPath != "" { // senderBinary's copy
			os.RemoveAll(filepath.Dir(copyPath))
		}
		os.Exit(code)
	case "eagain":
		os.Exit(eagainHelper(os.Args[len(os.Args)-1]))
	case "notify-send":
		os.Exit(notifySendHelper())
	case "notify-main":
		os.Exit(notifyMainHelper())
	case "notify-flood":
		os.Exit(notifyFloodHelper())
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// pidsCgroup makes a child cgroup of the pids controller (v2, or v1's
// pids hierarchy) and returns its directory, removed at the end of the
// test. It skips the test where none can be made.
func pidsCgroup(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a cgroup")
	}
	var root string
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(b), "pids") {
		root = "/sys/fs/cgroup"
	} else if _, err := os.Stat("/sys/fs/cgroup/pids/pids.max"); err == nil || os.IsNotExist(err) {
		if _, err := os.Stat("/sys/fs/cgroup/pids/cgroup.procs"); err == nil {
			root = "/sys/fs/cgroup/pids"
		}
	}
	if root == "" {
		t.Skip("no pids cgroup controller mounted at /sys/fs/cgroup or /sys/fs/cgroup/pids")
	}
	dir := filepath.Join(root, fmt.Sprintf("mainstay-readiness-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a pids cgroup: %v", err)
	}
	t.Cleanup(func() {
		// Empty once the helper is gone; rmdir fails while it is not.
		rmdirWhenEmpty(t, dir)
	})
	if _, err := os.Stat(filepath.Join(dir, "pids.max")); err != nil {
		t.Skipf("cgroup %s has no pids.max (pids controller not enabled there): %v", dir, err)
	}
	return dir
}

func rmdirWhenEmpty(t *testing.T, dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || time.Now().After(deadline) {
			if err != nil {
				t.Errorf("rmdir %s: %v", dir, err)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExecCheckTransientStartFailure: an exec probe that cannot fork
// (EAGAIN: a pids cgroup at its limit; RLIMIT_NPROC does not limit root)
// fails that attempt only. The wait goes on and passes once a process can
// start again. The helper process puts itself in the cgroup, so only it
// meets the limit.
func TestExecCheckTransientStartFailure(t *testing.T) {
	cg := pidsCgroup(t)
	var out bytes.Buffer
	exit, err := runner.Run(context.Background(), reaper.Spec{
		Argv:   []string{os.Args[0], "-test.run=^$", cg},
		Env:    append(os.Environ(), helperEnv+"=eagain"),
		Stdout: &out, Stderr: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !exit.Success() {
		t.Fatalf("helper: %s\n%s", exit, out.String())
	}
	for _, want := range []string{"check: resource temporarily unavailable, permanent false", "wait: passed after a failed attempt"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("helper output lacks %q:\n%s", want, out.String())
		}
	}
}

// eagainHelper runs in the helper process: it joins cgroup dir, limits it
// to the threads it has, and reports what an exec probe then does.
func eagainHelper(dir string) int {
	fail := func(format string, args ...any) int {
		fmt.Printf("helper: "+format+"\n", args...)
		return 1
	}
	// Park a few idle threads first: the runtime takes them instead of
	// creating threads, which the limit would make it die of.
	var ready, release sync.WaitGroup
	release.Add(1)
	for i := 0; i < 8; i++ {
		ready.Add(1)
		go func() {
			runtime.LockOSThread()
			ready.Done()
			release.Wait()
			runtime.UnlockOSThread()
		}()
	}
	ready.Wait()
	release.Done()
	write := func(name, v string) error { return os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644) }
	if err := write("cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
		return fail("join cgroup: %v", err)
	}
	cur, err := os.ReadFile(filepath.Join(dir, "pids.current"))
	if err != nil {
		return fail("%v", err)
	}
	if err := write("pids.max", strings.TrimSpace(string(cur))); err != nil {
		return fail("set pids.max: %v", err)
	}
	p, err := readiness.Parse("exec:true")
	if err != nil {
		return fail("%v", err)
	}
	err = p.Check(context.Background(), runner)
	var pe *backoff.PermanentError
	if !errors.Is(err, syscall.EAGAIN) {
		return fail("check = %v, want EAGAIN", err)
	}
	fmt.Printf("check: %v, permanent %v\n", syscall.EAGAIN, errors.As(err, &pe))

	// The whole wait: attempts fail until the limit is lifted, then pass.
	lw := &lineWatch{want: "resource temporarily unavailable", seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- readiness.Wait(context.Background(), []readiness.Probe{p}, readiness.Config{
			Timeout: 20 * time.Second, AttemptTimeout: 5 * time.Second, Runner: runner,
			Log:        slog.New(slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug})),
			NewBackOff: tickBackOff,
		})
	}()
	select {
	case <-lw.seen:
	case err := <-done:
		return fail("wait = %v before any failed attempt", err)
	case <-time.After(20 * time.Second):
		return fail("no failed attempt logged within 20s")
	}
	if err := write("pids.max", "max"); err != nil {
		return fail("lift pids.max: %v", err)
	}
	if err := <-done; err != nil {
		return fail("wait = %v, want nil", err)
	}
	fmt.Println("wait: passed after a failed attempt")
	return 0
}

// lineWatch closes seen at the first write that contains want.
type lineWatch struct {
	want string
	once sync.Once
	seen chan struct{}
}

func (l *lineWatch) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(l.want)) {
		l.once.Do(func() { close(l.seen) })
	}
	return len(b), nil
}
