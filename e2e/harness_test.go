//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Timeouts for waiting on conditions. They are deadlines, not delays: every
// wait returns as soon as its condition holds.
const (
	// short bounds what should happen at once (a marker file, a log line).
	short = 10 * time.Second
	// long bounds a whole mainstay run that is expected to finish.
	long = 30 * time.Second
)

// mode is how mainstay runs: as PID 1 of a fresh PID namespace, or as a
// plain child of the test (then it is a child subreaper).
type mode struct {
	name string
	pid1 bool
}

var modes = []mode{{"pid1", true}, {"child", false}}

// eachMode runs f as the parallel subtests "pid1" and "child".
func eachMode(t *testing.T, f func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if m.pid1 && unshareErr != nil {
				t.Fatalf("PID 1 mode needs a new PID namespace (run as root, or select -run '/child'): %v", unshareErr)
			}
			t.Parallel()
			f(t, m)
		})
	}
}

// config says how to start mainstay beyond its arguments.
type config struct {
	env []string // added to the test's environment
	// stdin, stdout and stderr, when set, replace /dev/null and the
	// capture files mainstay.out and mainstay.err in the run's directory.
	stdin, stdout, stderr *os.File
	// setsid starts mainstay (unshare in pid1 mode) in a new session;
	// with setctty, its fd ctty becomes the session's controlling terminal.
	setsid, setctty bool
	// netns, in pid1 mode, also gives mainstay a network namespace of its
	// own with the loopback up.
	netns bool
	ctty  int
	// wrap, when set, is a command that runs first and then execs
	// mainstay's command line, given as its arguments (in pid1 mode inside
	// the namespace, so mainstay still becomes PID 1).
	wrap []string
	// output, when set, returns what mainstay wrote to stderr (a pty).
	output func() []byte
}

// run is one mainstay process (in pid1 mode: the unshare process whose only
// child is mainstay).
type run struct {
	t    *testing.T
	m    mode
	dir  string
	cmd  *exec.Cmd
	errf string // stderr capture file, unless cfg.output
	cfg  config

	done  chan struct{}
	state *os.ProcessState
	ended time.Time

	mu      sync.Mutex
	pid     int       // mainstay's PID as the test sees it
	tracked []procRef // processes to kill if the test ends early
}

// start runs mainstay with args in mode m; dir holds its captured output.
func start(t *testing.T, m mode, dir string, args ...string) *run {
	t.Helper()
	return startWith(t, m, dir, config{}, args...)
}

func startWith(t *testing.T, m mode, dir string, cfg config, args ...string) *run {
	t.Helper()
	argv := append(append(slices.Clone(cfg.wrap), bin), args...)
	if m.pid1 {
		// --kill-child: should the test kill unshare, mainstay (and with
		// it the whole namespace) dies too.
		ns := []string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}
		if cfg.netns {
			// A network namespace of its own, with only a loopback: the
			// server can take its usual port. sh brings lo up, then
			// becomes mainstay, PID 1.
			ns = append(ns, "--net", "sh", "-c", `ip link set lo up && exec "$@"`, "sh")
		}
		argv = append(ns, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	// The test's own MAINSTAY_* variables (a developer's shell) must not
	// change what a test runs.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAINSTAY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// No control socket unless a test asks: runs at once would all try
	// the default path (the later ones logging a warning).
	cmd.Env = append(cmd.Env, "MAINSTAY_CONTROL_SOCKET=off")
	cmd.Env = append(cmd.Env, cfg.env...)
	r := &run{t: t, m: m, dir: dir, cmd: cmd, cfg: cfg, done: make(chan struct{})}
	var closers []*os.File
	if cfg.stdin != nil {
		cmd.Stdin = cfg.stdin
	}
	cmd.Stdout = cfg.stdout
	if cfg.stdout == nil {
		f := create(t, filepath.Join(dir, "mainstay.out"))
		closers = append(closers, f)
		cmd.Stdout = f
	}
	cmd.Stderr = cfg.stderr
	if cfg.stderr == nil {
		r.errf = filepath.Join(dir, "mainstay.err")
		f := create(t, r.errf)
		closers = append(closers, f)
		cmd.Stderr = f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !cfg.setsid, Setsid: cfg.setsid}
	if cfg.setsid && cfg.setctty {
		cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, cfg.ctty
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", argv, err)
	}
	for _, f := range closers {
		f.Close()
	}
	go func() {
		_ = cmd.Wait()
		r.mu.Lock()
		r.state, r.ended = cmd.ProcessState, time.Now()
		r.mu.Unlock()
		close(r.done)
	}()
	t.Cleanup(r.cleanup)
	return r
}

func create(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// cleanup kills whatever a failed or aborted test left running, and shows
// mainstay's log when the test failed.
func (r *run) cleanup() {
	select {
	case <-r.done:
	default:
		killTree(r.cmd.Process.Pid)
		select {
		case <-r.done:
		case <-time.After(short):
			r.t.Errorf("mainstay (pid %d) did not go away after SIGKILL", r.cmd.Process.Pid)
		}
	}
	r.mu.Lock()
	for _, p := range r.tracked {
		if p.alive() {
			_ = unix.Kill(p.pid, unix.SIGKILL)
		}
	}
	r.mu.Unlock()
	if r.t.Failed() {
		r.t.Logf("mainstay's stderr:\n%s", r.stderr())
	}
}

// killTree freezes root and all its descendants, then kills them.
func killTree(root int) {
	for range 5 {
		for pid := range descendants(root) {
			_ = unix.Kill(pid, unix.SIGSTOP)
		}
		_ = unix.Kill(root, unix.SIGSTOP)
	}
	for pid := range descendants(root) {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	_ = unix.Kill(root, unix.SIGKILL)
}

// PID is mainstay's PID as the test sees it. In pid1 mode it is the only
// child of unshare, once that child runs the mainstay binary; it is PID 1
// in its own namespace.
func (r *run) PID() int {
	r.t.Helper()
	if !r.m.pid1 {
		return r.cmd.Process.Pid
	}
	r.mu.Lock()
	pid := r.pid
	r.mu.Unlock()
	if pid != 0 {
		return pid
	}
	binInfo, err := os.Stat(bin)
	if err != nil {
		r.t.Fatal(err)
	}
	waitFor(r.t, short, "mainstay to run as unshare's child", func() bool {
		for _, c := range children(r.cmd.Process.Pid) {
			if fi, err := os.Stat(fmt.Sprintf("/proc/%d/exe", c.pid)); err == nil && os.SameFile(fi, binInfo) {
				pid = c.pid
				return true
			}
		}
		return false
	})
	if ns := nsPIDs(pid); len(ns) < 2 || ns[len(ns)-1] != 1 {
		r.t.Fatalf("mainstay (pid %d) is not PID 1 of its namespace: NSpid %v", pid, ns)
	}
	r.mu.Lock()
	r.pid = pid
	r.mu.Unlock()
	return pid
}

// hostPID turns a PID that a program under mainstay wrote (its $$, as seen
// in mainstay's PID namespace) into the PID the test sees, and tracks the
// process so that it is killed should the test end early.
func (r *run) hostPID(nspid int) procRef {
	r.t.Helper()
	pid := nspid
	if r.m.pid1 {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", r.PID()))
		if err != nil {
			r.t.Fatalf("mainstay's PID namespace: %v", err)
		}
		pid = 0
		for _, p := range allProcs() {
			ids := nsPIDs(p.pid)
			if len(ids) > 1 && ids[len(ids)-1] == nspid {
				if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p.pid)); err == nil && l == ns {
					pid = p.pid
					break
				}
			}
		}
		if pid == 0 {
			r.t.Fatalf("no process with PID %d in mainstay's namespace", nspid)
		}
	}
	p, ok := readProc(pid)
	if !ok {
		r.t.Fatalf("process %d (pid %d in mainstay's namespace) is gone already", pid, nspid)
	}
	ref := procRef{pid: pid, start: p.start}
	r.mu.Lock()
	r.tracked = append(r.tracked, ref)
	r.mu.Unlock()
	return ref
}

// pidFile waits until the program under mainstay wrote its PID into
// r.dir/name and returns that process.
func (r *run) pidFile(name string) procRef {
	r.t.Helper()
	s := waitLine(r.t, filepath.Join(r.dir, name))
	n, err := strconv.Atoi(s)
	if err != nil {
		r.t.Fatalf("%s: %q is not a PID", name, s)
	}
	return r.hostPID(n)
}

// signal sends sig to mainstay.
func (r *run) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := unix.Kill(r.PID(), sig); err != nil {
		r.t.Fatalf("kill mainstay with %s: %v", unix.SignalName(sig), err)
	}
}

// wait waits up to timeout for mainstay to exit and returns its exit code
// (128+N when signal N killed it). It fails the test on timeout.
func (r *run) wait(timeout time.Duration) int {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		r.t.Fatalf("mainstay did not exit within %s", timeout)
	}
	ws := r.state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// exited reports whether mainstay has exited.
func (r *run) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// endedAt is when mainstay exited; call it after wait.
func (r *run) endedAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended
}

// stderr is what mainstay (and the programs under it) wrote to stderr.
func (r *run) stderr() string {
	if r.cfg.output != nil {
		return strings.ReplaceAll(string(r.cfg.output()), "\r\n", "\n")
	}
	b, _ := os.ReadFile(r.errf)
	return string(b)
}

// logLine is one of mainstay's JSON log records.
type logLine map[string]any

func (l logLine) str(key string) string {
	s, _ := l[key].(string)
	return s
}

func (l logLine) num(key string) int {
	f, ok := l[key].(float64)
	if !ok {
		return -1
	}
	return int(f)
}

func (l logLine) time() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, l.str("time"))
	return t
}

func (l logLine) String() string {
	b, _ := json.Marshal(map[string]any(l))
	return string(b)
}

// logs are mainstay's own log records so far: the JSON lines on stderr with
// "logger":"mainstay". On a terminal a line may start with the echo of
// what was typed ("^C"), so each record is read from its first "{".
func (r *run) logs() []logLine {
	return parseLogs(r.stderr())
}

// parseLogs reads mainstay's JSON log records out of output that may hold
// other lines too (main's, a terminal's echo).
func parseLogs(output string) []logLine {
	var out []logLine
	for _, line := range strings.Split(output, "\n") {
		i := strings.IndexByte(line, '{')
		if i < 0 {
			continue
		}
		var l logLine
		if json.Unmarshal([]byte(strings.TrimSpace(line[i:])), &l) == nil && l.str("logger") == "mainstay" {
			out = append(out, l)
		}
	}
	return out
}

// logsWith are the records whose msg is msg.
func (r *run) logsWith(msg string) []logLine {
	var out []logLine
	for _, l := range r.logs() {
		if l.str("msg") == msg {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits for a record with message msg and returns the first one.
func (r *run) waitLog(msg string) logLine {
	r.t.Helper()
	var found logLine
	waitFor(r.t, short, fmt.Sprintf("log %q", msg), func() bool {
		if ls := r.logsWith(msg); len(ls) > 0 {
			found = ls[0]
			return true
		}
		return false
	})
	return found
}

// mustLog fails the test unless a record with message msg exists, and
// returns the first one (nil when there is none).
func (r *run) mustLog(msg string) logLine {
	r.t.Helper()
	ls := r.logsWith(msg)
	if len(ls) == 0 {
		r.t.Errorf("no log line %q", msg)
		return nil
	}
	return ls[0]
}

// mustNotLog fails the test if a record with message msg exists.
func (r *run) mustNotLog(msg string) {
	r.t.Helper()
	for _, l := range r.logsWith(msg) {
		r.t.Errorf("unexpected log line: %v", l)
	}
}

// waitFor polls cond until it holds, and fails the test when timeout
// passes first.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLine waits until path holds one complete line (programs write markers
// with echo, so a partial write is never mistaken for the value) and
// returns it without the newline.
func waitLine(t *testing.T, path string) string {
	t.Helper()
	var s string
	waitFor(t, short, filepath.Base(path), func() bool {
		b, err := os.ReadFile(path)
		s = string(b)
		return err == nil && strings.HasSuffix(s, "\n")
	})
	return strings.TrimSuffix(s, "\n")
}

// waitContains waits until the file at path has a line equal to line.
func waitContains(t *testing.T, path, line string) {
	t.Helper()
	waitFor(t, short, fmt.Sprintf("%q in %s", line, filepath.Base(path)), func() bool {
		return contains(lines(path), line)
	})
}

// lines are the lines of the file at path (none when it does not exist).
func lines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// script writes an executable sh script into dir and returns its path. The
// script starts with D set to dir, where it writes its marker files.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	src := "#!/bin/sh\nD=" + shQuote(dir) + "\n" + body
	if err := os.WriteFile(path, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// shQuote quotes s for sh.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// serverMain writes main.sh, a stand-in for a server: it writes the name
// of every signal it gets to main.sigs, one a line; it exits with code on
// TERM, INT or QUIT, and goes on after HUP, USR1 and USR2. Once its traps
// are set it writes its PID to main.pid: [mainReady] is the probe for that.
func serverMain(t *testing.T, dir string, code int) string {
	t.Helper()
	return script(t, dir, "main.sh", fmt.Sprintf(`for s in HUP USR1 USR2; do trap "echo $s >> '$D/main.sigs'" $s; done
for s in INT QUIT TERM; do trap "echo $s >> '$D/main.sigs'; exit %d" $s; done
echo $$ > "$D/main.pid"
while :; do sleep 0.05; done
`, code))
}

// mainReady is the --ready flag that waits for serverMain's main.pid, so
// that main is not stopped before it can tell.
func mainReady(dir string) []string {
	return []string{"--ready", "file:" + filepath.Join(dir, "main.pid")}
}

// procInfo is what the test reads from /proc/PID/stat.
type procInfo struct {
	pid, ppid, pgrp, session, tpgid int
	state                           byte
	start                           uint64 // clock ticks after boot
}

// readProc reads /proc/pid/stat; ok is false when the process is gone.
func readProc(pid int) (p procInfo, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return p, false
	}
	f := strings.Fields(string(b[i+1:])) // field 3 (state) onwards
	if len(f) < 20 {
		return p, false
	}
	p.pid, p.state = pid, f[0][0]
	p.ppid, _ = strconv.Atoi(f[1])
	p.pgrp, _ = strconv.Atoi(f[2])
	p.session, _ = strconv.Atoi(f[3])
	p.tpgid, _ = strconv.Atoi(f[5])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	return p, true
}

// allProcs reads every process the test can see.
func allProcs() []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// children are the processes whose parent is pid, zombies included.
func children(pid int) []procInfo {
	var out []procInfo
	for _, p := range allProcs() {
		if p.ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// descendants are root's children, their children and so on.
func descendants(root int) map[int]bool {
	kids := make(map[int][]int)
	for _, p := range allProcs() {
		kids[p.ppid] = append(kids[p.ppid], p.pid)
	}
	out := make(map[int]bool)
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range kids[p] {
			if !out[c] && c != root {
				out[c] = true
				queue = append(queue, c)
			}
		}
	}
	return out
}

// nsPIDs is the NSpid line of /proc/pid/status: the process's PID in each
// PID namespace it is in, outermost first.
func nsPIDs(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			var ids []int
			for _, f := range strings.Fields(rest) {
				n, _ := strconv.Atoi(f)
				ids = append(ids, n)
			}
			return ids
		}
	}
	return nil
}

// procRef names one process across PID reuse: a PID and its start time.
type procRef struct {
	pid   int
	start uint64
}

// alive reports whether the process still exists and has not exited (a
// zombie has exited).
func (p procRef) alive() bool {
	q, ok := readProc(p.pid)
	return ok && q.start == p.start && q.state != 'Z' && q.state != 'X'
}

// info re-reads the process; ok is false once it is gone.
func (p procRef) info() (procInfo, bool) {
	q, ok := readProc(p.pid)
	return q, ok && q.start == p.start
}

// mustBeGone fails the test if the process has not exited.
func mustBeGone(t *testing.T, what string, p procRef) {
	t.Helper()
	if p.alive() {
		t.Errorf("%s (pid %d) is still running", what, p.pid)
	}
}
