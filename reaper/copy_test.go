package reaper

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// readPID waits until file holds a PID and a newline, and returns it; the
// process is killed when the test ends if it still runs.
func readPID(t *testing.T, file string) int {
	t.Helper()
	var pid int
	waitFor(t, 10*time.Second, "a PID in "+file, func() bool {
		b, err := os.ReadFile(file)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	return pid
}

// logRecords are the shared reaper's log records whose message is msg.
func logRecords(t *testing.T, msg string) []map[string]any {
	t.Helper()
	return testLog.find(msg)
}

// waitWithin returns p's Wait, failing the test when it takes more than d.
func waitWithin(t *testing.T, p *Proc, d time.Duration) Exit {
	t.Helper()
	got := make(chan Exit, 1)
	go func() { got <- p.Wait() }()
	select {
	case exit := <-got:
		return exit
	case <-time.After(d):
		t.Fatalf("Wait did not return within %s of the exit", d)
	}
	panic("unreachable")
}

// TestSpecDefaults: a nil Env is an empty environment, a nil Stdin is
// /dev/null, Dir is the working directory, and a writer that is not a
// file gets everything the child wrote by the time Wait returns.
func TestSpecDefaults(t *testing.T) {
	t.Setenv("REAPER_TEST_VAR", "inherited")
	dir := t.TempDir()
	var out writes
	s := sh(`echo "${REAPER_TEST_VAR-unset}"; pwd; cat; echo "stdin ended"`)
	s.Dir, s.Stdout = dir, &out
	exit, err := shared.Run(t.Context(), s)
	if err != nil || !exit.Success() {
		t.Fatalf("Run: %v, %v", exit, err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if got, want := out.all(), "unset\n"+real+"\nstdin ended\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// TestPrefixPerRun: each run has its prefixer, so a run's last line
// without a newline is written, prefixed and ended, when the run ends,
// and the next run's first line starts a line of its own. Stdout and
// stderr are prefixed alike.
func TestPrefixPerRun(t *testing.T) {
	var out, errs writes
	for range 2 {
		s := sh(`echo one; echo err >&2; printf two`)
		s.Stdout, s.Stderr, s.Prefix = &out, &errs, "[p] "
		if _, err := shared.Run(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := out.all(), "[p] one\n[p] two\n[p] one\n[p] two\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got, want := errs.all(), "[p] err\n[p] err\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
}

// TestPrefixBatchedThroughPipe: a child's many short lines reach the
// writer in writes of whole prefixed lines of at most PIPE_BUF, not one
// write a line.
func TestPrefixBatchedThroughPipe(t *testing.T) {
	var out writes
	s := sh(`yes ab | head -n 20000`)
	s.Stdout, s.Prefix = &out, "[b] "
	if _, err := shared.Run(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if got, want := out.all(), strings.Repeat("[b] ab\n", 20000); got != want {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	checkBatches(t, &out, "[b] ")
	// 7 bytes a line: 585 fit in a batch, so 35 writes when reads are
	// whole; a pipe may hand the lines over in more reads than that.
	if n := len(out.sizes()); n > 20000/50 {
		t.Errorf("%d writes for 20000 lines: not batched", n)
	}
}

// TestOutputWaitBound: a child that exits while a descendant it started in
// a session of its own keeps its stdout and stderr open is waited for only
// OutputWait after its exit: then its unfinished last line is written,
// prefixed and ended, the pipes are closed, and the descendant is logged,
// once, as left running by the child.
func TestOutputWaitBound(t *testing.T) {
	dir := t.TempDir()
	var out, errs writes
	s := sh(`setsid sleep 1000 & echo $! > "$0/held"; echo to-stderr >&2; printf partial; exit 3`, dir)
	s.Name, s.Stdout, s.Stderr, s.Prefix = "test holder", &out, &errs, "[h] "
	s.OutputWait = 50 * time.Millisecond
	p, err := shared.Start(s)
	if err != nil {
		t.Fatal(err)
	}
	held := readPID(t, filepath.Join(dir, "held"))
	<-p.Done()
	if exit := waitWithin(t, p, 5*time.Second); exit.Code() != 3 {
		t.Errorf("exit %s, want exit status 3", exit)
	}
	if got := out.all(); got != "[h] partial\n" {
		t.Errorf("stdout %q, want the unfinished line, prefixed and ended", got)
	}
	if got := errs.all(); got != "[h] to-stderr\n" {
		t.Errorf("stderr %q", got)
	}
	if !alive(held) {
		t.Fatal("the descendant holding the pipes died: nothing was left running to name")
	}
	recs := logRecords(t, "left running by test holder")
	var named []map[string]any
	for _, r := range recs {
		if r["pid"] == float64(held) {
			named = append(named, r)
		}
	}
	if len(named) != 1 || named[0]["command"] != "sleep 1000" || named[0]["level"] != "INFO" {
		t.Errorf("logged %v, want one INFO record naming pid %d, command \"sleep 1000\"", recs, held)
	}
}

// TestKeepOutput: with KeepOutput the pipes stay open after the exit, for
// whatever inherited them, until CloseOutput; a child with the default
// OutputWait, in the same situation, has its pipes closed meanwhile.
func TestKeepOutput(t *testing.T) {
	dir := t.TempDir()
	// The descendant writes once $0/go exists, then exits; a test that
	// fails first still lets it go (cleanups run before the directory's).
	script := `(while [ ! -e "$0/go" ]; do sleep 0.01; done; echo late) & echo early`
	t.Cleanup(func() { os.WriteFile(filepath.Join(dir, "go"), nil, 0o644) })
	var kept, closed writes
	ks := sh(script, dir)
	ks.Stdout, ks.OutputWait = &kept, KeepOutput
	cs := sh(script, dir)
	cs.Stdout = &closed
	kp, err := shared.Start(ks)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := shared.Start(cs)
	if err != nil {
		t.Fatal(err)
	}
	waitWithin(t, kp, time.Second) // KeepOutput does not wait for the output
	waitWithin(t, cp, 5*time.Second)
	// cp's Wait returned: its pipe is closed. kp's is still open.
	select {
	case <-kp.out.done:
		t.Fatal("the kept output was closed at the exit")
	default:
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the late line in the kept output", func() bool { return kept.all() == "early\nlate\n" })
	done := make(chan struct{})
	go func() { kp.CloseOutput(time.Hour); close(done) }()
	select {
	case <-done: // the descendant exited: end of file, no hour's wait
	case <-time.After(10 * time.Second):
		t.Fatal("CloseOutput did not return at end of file")
	}
	if got := closed.all(); got != "early\n" {
		t.Errorf("the closed output got %q, want only what came before the exit", got)
	}
}

// TestCloseOutputNow: CloseOutput(0) ends a kept copy at once, even with a
// descendant holding the pipe, and names it.
func TestCloseOutputNow(t *testing.T) {
	dir := t.TempDir()
	var out writes
	s := sh(`sleep 1000 & echo $! > "$0/held"; printf 'no newline'`, dir)
	s.Name, s.Stdout, s.Prefix, s.OutputWait = "kept", &out, "k: ", KeepOutput
	p, err := shared.Start(s)
	if err != nil {
		t.Fatal(err)
	}
	held := readPID(t, filepath.Join(dir, "held"))
	waitWithin(t, p, time.Second)
	done := make(chan struct{})
	go func() { p.CloseOutput(0); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("CloseOutput(0) did not return")
	}
	if got := out.all(); got != "k: no newline\n" {
		t.Errorf("output %q", got)
	}
	if n := len(logRecords(t, "left running by kept")); n != 1 {
		t.Errorf("%d records name pid %d as left running, want 1", n, held)
	}
}

// TestOutputReopenedAsUser: a child run as another user can open its own
// output pipes again by name (/dev/stdout, as catalina.sh's CATALINA_OUT
// does), with or without a prefix: the pipes are its user's.
func TestOutputReopenedAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as nobody")
	}
	for _, prefix := range []string{"", "u: "} {
		var out writes
		s := sh(`echo out >> /dev/stdout && echo err >> /dev/stderr`)
		s.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
		s.Stdout, s.Stderr, s.Prefix = &out, &out, prefix
		p, err := shared.Start(s)
		if err != nil {
			t.Fatal(err)
		}
		if exit := waitWithin(t, p, 5*time.Second); !exit.Success() {
			t.Errorf("prefix %q: %s; output %q", prefix, exit, out.all())
		}
		if want := prefix + "out\n" + prefix + "err\n"; out.all() != want {
			t.Errorf("prefix %q: output %q, want %q", prefix, out.all(), want)
		}
	}
}
