package readiness_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper"
	"github.com/mainstay-dev/mainstay/reaper/reapertest"
	"golang.org/x/sys/unix"
)

// Environment of the notify-send helper: the message, and whether to send
// a descriptor with it and wait until the receiver has closed it, as
// sd_notify_barrier(3) does.
const (
	sendMsgEnv     = "MAINSTAY_TEST_NOTIFY_MSG"
	sendBarrierEnv = "MAINSTAY_TEST_NOTIFY_BARRIER"
)

// notifySendHelper sends one message to $NOTIFY_SOCKET, a real sd_notify
// client: the kernel attaches its credentials. It prints pid=ITS_PID once
// sent, and exits 0 when sent (and, with a barrier, once the descriptor
// was closed), 3 when the descriptor stayed open for 10 s, 1 on error.
func notifySendHelper() int {
	addr := os.Getenv(readiness.NotifyEnv)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	var oob []byte
	var pipe [2]int
	barrier := os.Getenv(sendBarrierEnv) != ""
	if barrier {
		if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
			fmt.Println(err)
			return 1
		}
		oob = unix.UnixRights(pipe[1])
	}
	if err := unix.Sendmsg(fd, []byte(os.Getenv(sendMsgEnv)), oob, &unix.SockaddrUnix{Name: addr}, 0); err != nil {
		fmt.Println("sendmsg:", err)
		return 1
	}
	fmt.Printf("pid=%d\n", os.Getpid())
	if !barrier {
		return 0
	}
	unix.Close(pipe[1])
	// The read end hangs up once the receiver closed its copy.
	fds := []unix.PollFd{{Fd: int32(pipe[0])}}
	n, err := unix.Poll(fds, 10_000)
	if err != nil || n == 0 || fds[0].Revents&unix.POLLHUP == 0 {
		fmt.Println("barrier descriptor still open after 10s")
		return 3
	}
	return 0
}

// notifyMainHelper stands for a main that speaks sd_notify: once a line
// (or the end) arrives on its stdin, it sends READY=1 to $NOTIFY_SOCKET
// from its own PID, then waits to be killed.
func notifyMainHelper() int {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	os.Stdin.Read(make([]byte, 1))
	if err := unix.Sendto(fd, []byte("READY=1"), 0, &unix.SockaddrUnix{Name: os.Getenv(readiness.NotifyEnv)}); err != nil {
		fmt.Println("sendto:", err)
		return 1
	}
	select {}
}

// notifyFloodHelper sends to $NOTIFY_SOCKET, as fast as the socket takes
// them, messages that a believed sender would make count, until the
// socket is gone or it is killed.
func notifyFloodHelper() int {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	to := &unix.SockaddrUnix{Name: os.Getenv(readiness.NotifyEnv)}
	msg := []byte("READY=1\nSTOPPING=1\nSTATUS=flood\nEXTEND_TIMEOUT_USEC=1")
	for {
		if err := unix.Sendto(fd, msg, 0, to); err != nil && err != unix.EINTR {
			fmt.Println("sendto:", err)
			return 1
		}
	}
}

// A uid and another, neither mainstay's.
const (
	senderUID = 12345
	mainUID   = 54321
)

var (
	copyOnce sync.Once
	copyPath string
	copyErr  error
)

// senderBinary is a copy of this test binary that any user may execute:
// go test's own build directory is root's alone.
func senderBinary(t *testing.T) string {
	t.Helper()
	copyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mainstay-notify-test-")
		if err != nil {
			copyErr = err
			return
		}
		os.Chmod(dir, 0o755)
		b, err := os.ReadFile(os.Args[0])
		if err != nil {
			copyErr = err
			return
		}
		copyPath = filepath.Join(dir, "sender")
		copyErr = os.WriteFile(copyPath, b, 0o755)
	})
	if copyErr != nil {
		t.Fatal(copyErr)
	}
	return copyPath
}

// send runs the notify-send helper as a child of the test process, as
// uid when uid >= 0, and returns its exit code and output.
func send(t *testing.T, n *readiness.Notify, uid int, msg string, barrier bool) (int, string) {
	t.Helper()
	var out bytes.Buffer
	s := reaper.Spec{
		Argv:   []string{senderBinary(t), "-test.run=^$"},
		Env:    append(os.Environ(), helperEnv+"=notify-send", n.Env(), sendMsgEnv+"="+msg),
		Stdout: &out, Stderr: &out,
	}
	if barrier {
		s.Env = append(s.Env, sendBarrierEnv+"=1")
	}
	if uid >= 0 {
		s.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	exit, err := runner.Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return exit.Code(), out.String()
}

// listenNotify makes a notify probe with its socket, closed at the end.
func listenNotify(t *testing.T) *readiness.Notify {
	t.Helper()
	n := mustParse(t, "notify").(*readiness.Notify)
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	if !strings.HasPrefix(n.Env(), readiness.NotifyEnv+"=@") {
		t.Fatalf("Env() = %q, want an abstract socket address", n.Env())
	}
	return n
}

// sleeper starts a process that stands for a main the sender is not part
// of, and returns its PID.
func sleeper(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p, err := runner.Start(reaper.Spec{Argv: []string{"sleep", "1000"}})
		if err != nil {
			t.Error(err)
			started <- 0
			return
		}
		started <- p.PID()
		<-ctx.Done()
		p.Signal(syscall.SIGKILL)
		p.Wait()
	}()
	pid := <-started
	t.Cleanup(func() { cancel(); <-done })
	if pid == 0 {
		t.FailNow()
	}
	return pid
}

// Who is believed: a sender in main's process tree (whatever its user) or
// running as main's user (wherever it is); nobody else.
func TestNotifyCredentials(t *testing.T) {
	tests := []struct {
		name      string
		outside   bool // main is another process, not the test that starts the sender
		senderUID int  // -1: the test's own (root)
		mainUID   int
		believed  bool
	}{
		{"child of main", false, -1, mainUID, true},
		{"another uid in main's tree", false, senderUID, mainUID, true},
		{"main's user outside main's tree", true, senderUID, senderUID, true},
		{"neither in main's tree nor main's user", true, senderUID, mainUID, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if os.Geteuid() != 0 && tt.senderUID >= 0 {
				t.Skip("needs root to send as another user")
			}
			n := listenNotify(t)
			mainPID := os.Getpid()
			if tt.outside {
				mainPID = sleeper(t)
			}
			log, logs := reapertest.NewLog()
			n.Start(mainPID, tt.mainUID, log)
			// With a barrier, as systemd-notify sends: the sender is still
			// in /proc when its place in main's tree is read.
			if code, out := send(t, n, tt.senderUID, "READY=1", true); code != 0 {
				t.Fatalf("sender exited %d: %s", code, out)
			}
			if !tt.believed {
				reapertest.WaitFor(t, "the refusal", func() bool {
					return len(logs.Find(t, "notify message refused: the sender is neither in main's process tree nor main's user")) == 1
				})
				if err := n.Check(context.Background(), runner); err == nil {
					t.Fatal("Check passed on a refused READY=1")
				}
				return
			}
			err := readiness.Wait(context.Background(), []readiness.Probe{n}, readiness.Config{
				Timeout: 20 * time.Second, AttemptTimeout: time.Second, Runner: runner, Log: log,
			})
			if err != nil {
				t.Fatalf("Wait = %v, want nil", err)
			}
			// Named as what it is: main's tree, or main's user.
			want := "main sent READY=1"
			if tt.outside {
				want = "a process of main's user sent READY=1"
			}
			if len(logs.Find(t, want)) != 1 {
				t.Errorf("no %q log record: %v", want, logs.Records(t))
			}
		})
	}
}

// The protocol's other fields: STATUS and MAINPID logged, STOPPING=1 from
// main's tree closes Stopping, other fields ignored, and a descriptor that
// comes with a message is closed at once (the sender waits for that).
func TestNotifyProtocol(t *testing.T) {
	n := listenNotify(t)
	log, logs := reapertest.NewLog()
	n.Start(os.Getpid(), mainUID, log)
	select {
	case <-n.Stopping():
		t.Fatal("stopping before STOPPING=1")
	default:
	}
	if code, out := send(t, n, -1, "STATUS=loading 3 of 7\nMAINPID=4242\nWATCHDOG=1\nBARRIER=1", true); code != 0 {
		t.Fatalf("sender exited %d (3: the descriptor was not closed): %s", code, out)
	}
	reapertest.WaitFor(t, "the status", func() bool {
		return len(logs.Find(t, "main status", "status", "loading 3 of 7")) == 1
	})
	if len(logs.Find(t, "main sent MAINPID; main stays the process mainstay started", "mainpid", "4242")) != 1 {
		t.Errorf("MAINPID not logged: %v", logs.Records(t))
	}
	if n.Check(context.Background(), runner) == nil {
		t.Error("passed without READY=1")
	}
	code, out := send(t, n, -1, "STOPPING=1", true)
	if code != 0 {
		t.Fatalf("sender exited %d: %s", code, out)
	}
	select {
	case <-n.Stopping():
	case <-time.After(10 * time.Second):
		t.Fatal("Stopping not closed 10s after STOPPING=1")
	}
	// A descendant of main speaks for main; the line gives its own PID.
	if recs := logs.Find(t, "main sent STOPPING=1"); len(recs) != 1 || fmt.Sprint(recs[0]["pid"]) != senderPID(t, out) {
		t.Errorf("STOPPING=1 records %v, want one with the sender's pid %s", recs, senderPID(t, out))
	}
}

// senderPID is the PID the notify-send helper printed.
func senderPID(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if pid, ok := strings.CutPrefix(line, "pid="); ok {
			return pid
		}
	}
	t.Fatalf("no pid= in the sender's output %q", out)
	return ""
}

// A process of main's user that is not in main's tree (a sidecar of the
// same user, say) is believed, but named as what it is, with its own PID,
// and its STOPPING=1 changes nothing: only main and its descendants may
// say main is stopping. Main's own STOPPING=1 still counts afterwards.
func TestNotifySameUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to send as another user")
	}
	n := listenNotify(t)
	mainPID := sleeper(t)
	log, logs := reapertest.NewLog()
	n.Start(mainPID, senderUID, log)
	code, out := send(t, n, senderUID, "STOPPING=1\nSTATUS=stopping soon\nMAINPID=1\nREADY=1", true)
	if code != 0 {
		t.Fatalf("sender exited %d: %s", code, out)
	}
	pid := senderPID(t, out)
	err := readiness.Wait(context.Background(), []readiness.Probe{n}, readiness.Config{
		Timeout: 20 * time.Second, AttemptTimeout: time.Second, Runner: runner, Log: log,
	})
	if err != nil {
		t.Fatalf("Wait = %v: the READY=1 of main's user counts", err)
	}
	for _, msg := range []string{
		"a process of main's user sent READY=1",
		"a process of main's user sent STOPPING=1; ignored: only main and its descendants may say it is stopping",
		"a process of main's user sent a status",
		"a process of main's user sent MAINPID; main stays the process mainstay started",
	} {
		if recs := logs.Find(t, msg); len(recs) != 1 || fmt.Sprint(recs[0]["pid"]) != pid {
			t.Errorf("records %q: %v, want one with the sender's pid %s", msg, recs, pid)
		}
	}
	for _, r := range logs.Records(t) {
		if strings.HasPrefix(fmt.Sprint(r["msg"]), "main ") {
			t.Errorf("a line credits main with the message: %v", r)
		}
	}
	select {
	case <-n.Stopping():
		t.Fatal("Stopping closed by a STOPPING=1 from outside main's tree")
	default:
	}
}

// One datagram, however many lines it has, makes one line per field: the
// first STATUS=, MAINPID= and EXTEND_TIMEOUT_USEC=, as systemd takes them.
func TestNotifyOneLinePerField(t *testing.T) {
	n := listenNotify(t)
	log, logs := reapertest.NewLog()
	n.Start(os.Getpid(), mainUID, log)
	var msg strings.Builder
	for i := range 1000 { // 55 kB: less than the 64 KiB read
		fmt.Fprintf(&msg, "STATUS=line %d\nMAINPID=%d\nEXTEND_TIMEOUT_USEC=x%d\n", i, i, i)
	}
	msg.WriteString("READY=1")
	if code, out := send(t, n, -1, msg.String(), true); code != 0 {
		t.Fatalf("sender exited %d: %s", code, out)
	}
	reapertest.WaitFor(t, "READY=1", func() bool { return len(logs.Find(t, "main sent READY=1")) == 1 })
	if recs := logs.Find(t, "main status"); len(recs) != 1 || recs[0]["status"] != "line 0" {
		t.Errorf("status records %v, want one: line 0", recs)
	}
	if recs := logs.Find(t, "main sent MAINPID; main stays the process mainstay started"); len(recs) != 1 || recs[0]["mainpid"] != "0" {
		t.Errorf("MAINPID records %v, want one: 0", recs)
	}
	if recs := logs.Find(t, "notify message: bad EXTEND_TIMEOUT_USEC"); len(recs) != 1 || recs[0]["value"] != "x0" {
		t.Errorf("EXTEND_TIMEOUT_USEC records %v, want one: x0", recs)
	}
	if recs := logs.Records(t); len(recs) > 5 {
		t.Errorf("%d records for one datagram, want at most 5", len(recs))
	}
}

// A process of another user floods main's socket (it found the address in
// /proc/net/unix): one line says so, then a count; main's own READY=1
// still lands at once, and the flood's STOPPING=1 counts for nothing.
func TestNotifyFlood(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to send as another user")
	}
	n := listenNotify(t)
	// Main: sends READY=1 itself, from its own PID, when told to.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mainProc, err := runner.Start(reaper.Spec{
		Argv:  []string{senderBinary(t), "-test.run=^$"},
		Env:   append(os.Environ(), helperEnv+"=notify-main", n.Env()),
		Stdin: r,
	})
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { mainProc.Signal(syscall.SIGKILL); mainProc.Wait() }()
	log, logs := reapertest.NewLog()
	n.Start(mainProc.PID(), mainUID, log)

	const nobody = 65534
	floodProc, err := runner.Start(reaper.Spec{
		Argv:       []string{senderBinary(t), "-test.run=^$"},
		Env:        append(os.Environ(), helperEnv+"=notify-flood", n.Env()),
		Credential: &syscall.Credential{Uid: nobody, Gid: nobody},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopFlood := sync.OnceFunc(func() { floodProc.Signal(syscall.SIGKILL); floodProc.Wait() })
	defer stopFlood()
	const refused = "notify message refused: the sender is neither in main's process tree nor main's user"
	reapertest.WaitFor(t, "the first refusal", func() bool { return len(logs.Find(t, refused)) > 0 })
	// The condition waited for is time itself: the flood going on.
	flooding := time.Now()
	reapertest.WaitFor(t, "half a second of flood", func() bool { return time.Since(flooding) > 500*time.Millisecond })

	sent := time.Now()
	w.Write([]byte("\n"))
	err = readiness.Wait(context.Background(), []readiness.Probe{n}, readiness.Config{
		Timeout: 20 * time.Second, AttemptTimeout: time.Second, Runner: runner, Log: log,
	})
	took := time.Since(sent)
	if err != nil {
		t.Fatalf("Wait = %v", err)
	}
	if took > time.Second {
		t.Errorf("main's READY=1 took %s to land under the flood, want less than 1s", took)
	}
	stopFlood()
	n.Close() // logs the count
	if recs := logs.Find(t, "main sent READY=1"); len(recs) != 1 || fmt.Sprint(recs[0]["pid"]) != fmt.Sprint(mainProc.PID()) {
		t.Errorf("READY=1 records %v, want one from main's pid %d", recs, mainProc.PID())
	}
	select {
	case <-n.Stopping():
		t.Error("the flood's STOPPING=1 closed Stopping")
	default:
	}
	counts := logs.Find(t, "notify messages refused")
	if len(logs.Find(t, refused)) != 1 || len(counts) != 1 {
		t.Fatalf("refusal records: %d in full, %d counts, want 1 and 1 (10s interval): %v",
			len(logs.Find(t, refused)), len(counts), logs.Records(t))
	}
	n64, _ := counts[0]["count"].(float64)
	t.Logf("main's READY=1 landed %s after it was sent; %d messages refused in %s, in %d log records",
		took.Round(time.Millisecond), int(n64)+1, time.Since(flooding).Round(time.Millisecond), len(logs.Records(t)))
	if n64 < 100 || fmt.Sprint(counts[0]["last_uid"]) != fmt.Sprint(nobody) {
		t.Errorf("count record %v, want a count of the flood (100 or more) from uid %d", counts[0], nobody)
	}
	if recs := logs.Records(t); len(recs) > 6 {
		t.Errorf("%d log records, want a handful: %v", len(recs), recs)
	}
}

// A real systemd-notify: Debian's sends READY=1 with a barrier descriptor
// and waits until it is closed.
func TestNotifySystemdNotify(t *testing.T) {
	path, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("systemd-notify not installed (e2e/setup.sh installs it)")
	}
	n := listenNotify(t)
	log, _ := reapertest.NewLog()
	n.Start(os.Getpid(), mainUID, log)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exit, err := runner.Run(ctx, reaper.Spec{
		Argv:   []string{path, "--ready", "--status=up"},
		Env:    append(os.Environ(), n.Env()),
		Stdout: &out, Stderr: &out,
	})
	if err != nil || !exit.Success() {
		t.Fatalf("systemd-notify: %v %s: %s", err, exit, out.String())
	}
	if err := readiness.Wait(context.Background(), []readiness.Probe{n}, readiness.Config{
		Timeout: 20 * time.Second, AttemptTimeout: time.Second, Runner: runner, Log: log,
	}); err != nil {
		t.Fatalf("Wait = %v", err)
	}
}

// EXTEND_TIMEOUT_USEC moves the end of the wait; without it the same wait
// times out.
func TestWaitExtendTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	t.Run("without extension the wait times out", func(t *testing.T) {
		n := listenNotify(t)
		log, _ := reapertest.NewLog()
		n.Start(os.Getpid(), mainUID, log)
		err := readiness.Wait(context.Background(), []readiness.Probe{n}, readiness.Config{
			Timeout: timeout, AttemptTimeout: time.Second, Runner: runner, Log: log,
		})
		var nr *readiness.NotReadyError
		if !errors.As(err, &nr) || len(nr.Failing) != 1 || !strings.Contains(nr.Failing[0].Err.Error(), "has not sent READY=1") {
			t.Fatalf("Wait = %v, want a NotReadyError for notify", err)
		}
	})
	t.Run("extended", func(t *testing.T) {
		// Long enough for the sender, a process started under whatever
		// load the machine has, to get EXTEND_TIMEOUT_USEC in before it.
		const timeout = 2 * time.Second
		n := listenNotify(t)
		log, logs := reapertest.NewLog()
		n.Start(os.Getpid(), mainUID, log)
		start := time.Now()
		done := startWait(context.Background(), []readiness.Probe{n}, readiness.Config{
			Timeout: timeout, AttemptTimeout: time.Second, Runner: runner, Log: log,
		})
		if code, out := send(t, n, -1, "EXTEND_TIMEOUT_USEC=20000000", false); code != 0 {
			t.Fatalf("sender exited %d: %s", code, out)
		}
		reapertest.WaitFor(t, "the extension", func() bool { return len(logs.Find(t, "readiness deadline extended")) == 1 })
		// The condition waited for is time itself: past the old deadline.
		reapertest.WaitFor(t, "twice the timeout", func() bool { return time.Since(start) > 2*timeout })
		stillWaiting(t, done, "the deadline was extended by 20s")
		if code, out := send(t, n, -1, "READY=1", false); code != 0 {
			t.Fatalf("sender exited %d: %s", code, out)
		}
		if err := result(t, done); err != nil {
			t.Fatalf("Wait = %v, want nil", err)
		}
	})
}

// Mainstay's own NOTIFY_SOCKET is told READY=1, at a socket path or an
// abstract address (plan.Environ keeps it from every child).
func TestUpstream(t *testing.T) {
	for _, tt := range []struct{ name, addr string }{
		{"path", filepath.Join(t.TempDir(), "notify.sock")},
		{"abstract", fmt.Sprintf("@mainstay-test-%d", os.Getpid())},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: tt.addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			log, _ := reapertest.NewLog()
			up := readiness.NewUpstream(tt.addr, log)
			if up == nil {
				t.Fatal("NewUpstream = nil")
			}
			up.Send("READY=1")
			l.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 64)
			n, err := l.Read(buf)
			if err != nil || string(buf[:n]) != "READY=1" {
				t.Fatalf("read %q, %v; want READY=1", buf[:n], err)
			}
		})
	}
	t.Run("unset", func(t *testing.T) {
		log, _ := reapertest.NewLog()
		up := readiness.NewUpstream("", log)
		if up != nil {
			t.Fatalf("TakeNotifySocket = %v, want nil", up)
		}
		up.Send("READY=1") // a nil Upstream does nothing
	})
}

// listenRun makes n's socket, closed at the end of the test.
func listenRun(t *testing.T, n *readiness.Notify) *readiness.Notify {
	t.Helper()
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// A sidecar's runs: each has its own socket and ready state, so a READY=1
// sent to one run never counts for the next, and the socket of a run that
// ended refuses messages. Its lines name the sidecar as the sender; the
// EXTEND_TIMEOUT_USEC of every run reach the sidecar's one channel, which
// a run's own wait, without a timeout, leaves alone.
func TestNotifyForRun(t *testing.T) {
	tmpl := mustParse(t, "notify").(*readiness.Notify)
	file := mustParse(t, "file:/nonexistent")
	probes, first := readiness.ForRun([]readiness.Probe{file, tmpl})
	if first == nil || first == tmpl || probes[1] != first || probes[0] != file {
		t.Fatalf("ForRun = %v, %v: want the file probe kept and a fresh notify probe in the template's place", probes, first)
	}
	if _, none := readiness.ForRun([]readiness.Probe{file}); none != nil {
		t.Errorf("ForRun without a notify probe returned %v", none)
	}
	listenRun(t, first)
	log, logs := reapertest.NewLog()
	first.Start(os.Getpid(), mainUID, log)
	sent := time.Now()
	if code, out := send(t, first, -1, "READY=1\nSTATUS=up\nEXTEND_TIMEOUT_USEC=5000000", false); code != 0 {
		t.Fatalf("sender exited %d: %s", code, out)
	}
	if err := readiness.Wait(context.Background(), []readiness.Probe{first}, readiness.Config{Runner: runner, Log: log}); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	reapertest.WaitFor(t, "the status", func() bool { return len(logs.Find(t, "sidecar status", "status", "up")) == 1 })
	if len(logs.Find(t, "sidecar sent READY=1")) != 1 || len(logs.Find(t, "main sent READY=1")) != 0 {
		t.Errorf("READY=1 records %v, want one naming the sidecar", logs.Records(t))
	}
	select {
	case until := <-tmpl.Extensions():
		if until.Before(sent.Add(5*time.Second)) || until.After(time.Now().Add(5*time.Second)) {
			t.Errorf("extended until %s after the message was sent, want 5s after it was read", until.Sub(sent))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("EXTEND_TIMEOUT_USEC did not reach the template's Extensions")
	}

	second := listenRun(t, tmpl.ForRun())
	if second.Env() == first.Env() {
		t.Fatalf("both runs got %s", first.Env())
	}
	first.Close()
	second.Start(os.Getpid(), mainUID, log)
	if err := second.Check(context.Background(), runner); err == nil || !strings.Contains(err.Error(), "sidecar has not sent READY=1") {
		t.Errorf("the second run's Check = %v, want not ready (the first run's READY=1 does not count)", err)
	}
	// The first run's socket is gone: a late READY=1 sent there is refused.
	if code, out := send(t, first, -1, "READY=1", false); code != 1 || !strings.Contains(out, "connection refused") {
		t.Errorf("a READY=1 to the ended run's socket: exit %d %q, want refused", code, out)
	}
	if err := second.Check(context.Background(), runner); err == nil {
		t.Error("the second run is ready without its own READY=1")
	}
	if code, out := send(t, second, -1, "READY=1", false); code != 0 {
		t.Fatalf("sender exited %d: %s", code, out)
	}
	if err := readiness.Wait(context.Background(), []readiness.Probe{second}, readiness.Config{Runner: runner, Log: log}); err != nil {
		t.Fatalf("Wait = %v", err)
	}
}

// A Deadline moves later on Extend, never earlier, and not once passed.
func TestDeadline(t *testing.T) {
	log, logs := reapertest.NewLog()
	d := readiness.NewDeadline(time.Hour)
	defer d.Stop()
	d.Extend(time.Now().Add(time.Minute), log)
	if got := d.Timeout(); got != time.Hour {
		t.Errorf("after an earlier Extend, Timeout = %s, want 1h", got)
	}
	d.Extend(time.Now().Add(2*time.Hour), log)
	if got := d.Timeout(); got < 2*time.Hour || got > 2*time.Hour+time.Minute {
		t.Errorf("after a later Extend, Timeout = %s, want about 2h", got)
	}
	if len(logs.Find(t, "readiness deadline extended")) != 1 {
		t.Errorf("records %v, want one extension logged", logs.Records(t))
	}

	short := readiness.NewDeadline(time.Millisecond)
	<-short.C()
	short.Extend(time.Now().Add(time.Hour), log)
	if got := short.Timeout(); got != time.Millisecond {
		t.Errorf("Extend after the deadline passed: Timeout = %s, want 1ms", got)
	}
	if none := readiness.NewDeadline(0); none.C() != nil {
		t.Error("a deadline without a timeout has a channel")
	}
}
