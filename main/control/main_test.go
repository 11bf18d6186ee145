package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/reaper/reapertest"
)

// The test binary doubles as a server or a client in another process
// (another uid, or one to SIGKILL): TestMain runs that part when
// helperEnv is set, "server PATH" or "client PATH OP".
const helperEnv = "MAINSTAY_CONTROL_TEST_HELPER"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		os.Exit(helperMain(strings.Fields(v)))
	}
	code := m.Run()
	if copyPath != "" {
		os.RemoveAll(filepath.Dir(copyPath))
	}
	os.Exit(code)
}

func helperMain(args []string) int {
	switch {
	case len(args) == 2 && args[0] == "server":
		srv, err := Listen(args[1], newFake(), slog.New(slog.NewTextHandler(os.Stderr, nil)))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("listening")
		io.Copy(io.Discard, os.Stdin) // until the test closes stdin (or kills us)
		srv.Close()
		return 0
	case len(args) == 3 && args[0] == "client":
		c, err := Dial(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := Request{Op: args[2]}
		if changes(req.Op) {
			req.Names = []string{"cache"}
		}
		resp, err := c.Do(ctx, req)
		if resp == nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		json.NewEncoder(os.Stdout).Encode(resp)
		return 0
	}
	fmt.Fprintf(os.Stderr, "%s: bad value %q\n", helperEnv, args)
	return 2
}

// fake is the Handler of the tests: a fixed status, a record of calls,
// and optionally a restart that blocks until released.
type fake struct {
	mu     sync.Mutex
	status Status
	calls  []string
	err    error // returned by every changing call when set

	entered chan struct{} // when set, Restart says it entered...
	release chan struct{} // ...and waits for this (or ctx)
}

var started = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newFake() *fake {
	return &fake{status: Status{Phase: PhaseReady, Ready: true, Children: []Child{
		{Name: "main", Kind: "main", State: "running", PID: 7, Started: &started, Command: []string{"postgres", "-c", "password=secret"}},
		{Name: "cache", Kind: "sidecar", State: "running", PID: 9, Started: &started, Restarts: 1,
			LastExit: &Exit{Code: 137, Status: "killed by SIGKILL", At: started}, Command: []string{"memcached"}},
		{Name: "helper migrate", Kind: "helper", State: "exited",
			LastExit: &Exit{Code: 0, Status: "exit status 0", At: started}, Command: []string{"migrate", "up"}},
	}}}
}

func (f *fake) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Children = append([]Child(nil), st.Children...)
	return st
}

func (f *fake) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fake) Restart(ctx context.Context, names []string) error {
	if f.entered != nil {
		f.entered <- struct{}{}
		select {
		case <-f.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.record("restart " + strings.Join(names, " "))
}

func (f *fake) Stop(ctx context.Context, names []string) error {
	return f.record("stop " + strings.Join(names, " "))
}

func (f *fake) Start(ctx context.Context, names []string) error {
	return f.record("start " + strings.Join(names, " "))
}

func (f *fake) Signal(sig syscall.Signal, names []string) error {
	return f.record(fmt.Sprintf("signal %d %s", sig, strings.Join(names, " ")))
}

// logBuffer collects a server's log lines; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// socketPath is a socket path in a new directory every uid can reach.
func socketPath(t *testing.T) string {
	t.Helper()
	dir := reapertest.PublicDir(t)
	return filepath.Join(dir, "control.sock")
}

// serve starts a server of h at a new path, closed at the end of the test.
func serve(t *testing.T, h Handler, lim limits) (*Server, *logBuffer) {
	t.Helper()
	var logs logBuffer
	srv, err := listen(socketPath(t), h, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, &logs
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// raw is a connection that sends and reads lines by hand.
type raw struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, path string) *raw {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// Bounds a test that goes wrong; never reached when it goes right.
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return &raw{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *raw) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *raw) answer() Response {
	c.t.Helper()
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("no answer: %v (read %q)", err, line)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		c.t.Fatalf("answer %q: %v", line, err)
	}
	if resp.V != Version {
		c.t.Errorf("answer %q: v is not %d", line, Version)
	}
	return resp
}

// closed checks that the server closed the connection: end of file, or
// a reset when it left part of the request unread.
func (c *raw) closed() {
	c.t.Helper()
	b, err := c.r.ReadByte()
	if err == nil {
		c.t.Fatalf("connection still open: read %q", b)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("connection not closed: %v", err)
	}
}

// helperCmd is the test binary as a helper process, as uid (and gid) id
// when id >= 0. For another uid it runs a copy in a directory that uid
// can reach.
func helperCmd(t *testing.T, id int, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if id >= 0 {
		bin = publicCopy(t, bin)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(args, " "))
	if id >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id), Gid: uint32(id), Groups: []uint32{}}}
	}
	return cmd
}

var (
	copyOnce sync.Once
	copyPath string
	copyErr  error
)

// publicCopy copies the test binary once per run to a directory every uid
// can reach (the go tool's is private).
func publicCopy(t *testing.T, bin string) string {
	copyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "control-test-bin-")
		if err != nil {
			copyErr = err
			return
		}
		os.Chmod(dir, 0o755)
		copyPath = filepath.Join(dir, "control.test")
		b, err := os.ReadFile(bin)
		if err == nil {
			err = os.WriteFile(copyPath, b, 0o755)
		}
		copyErr = err
	})
	if copyErr != nil {
		t.Fatal(copyErr)
	}
	return copyPath
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs processes as another uid")
	}
}
