package control

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/mainstay-dev/mainstay/reaper/reapertest"
)

const nobody = 65534

// runClient runs the test binary as a client of path as uid, asking op
// (for a changing op, of "cache"), and returns the answer.
func runClient(t *testing.T, uid int, path, op string) Response {
	t.Helper()
	cmd := helperCmd(t, uid, "client", path, op)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as uid %d: %v", uid, err)
	}
	var resp Response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("client as uid %d: %q: %v", uid, out, err)
	}
	return resp
}

// A client of another uid sees status without any child's command, and
// is denied restart, stop, start and signal, each logged with its uid.
func TestOtherUID(t *testing.T) {
	requireRoot(t)
	h := newFake()
	srv, logs := serve(t, h, defaultLimits)

	resp := runClient(t, nobody, srv.Path(), OpStatus)
	if !resp.OK || resp.Status == nil || len(resp.Status.Children) != 3 {
		t.Fatalf("status as nobody: %+v", resp)
	}
	for _, c := range resp.Status.Children {
		if c.Command != nil {
			t.Errorf("nobody sees %s's command %q", c.Name, c.Command)
		}
	}
	if c := resp.Status.Children[1]; c.Name != "cache" || c.Kind != "sidecar" || c.State != "running" || c.PID != 9 {
		t.Errorf("nobody's view of cache: %+v", c)
	}
	if resp := runClient(t, nobody, srv.Path(), OpHealth); !resp.OK || !resp.Health.Healthy {
		t.Errorf("health as nobody: %+v", resp)
	}
	for _, op := range []string{OpRestart, OpStop, OpStart} {
		resp := runClient(t, nobody, srv.Path(), op)
		if resp.OK || resp.Error.Kind != KindDenied || !strings.Contains(resp.Error.Message, "uid 65534 may ask for status and health only") {
			t.Errorf("%s as nobody: %+v", op, resp.Error)
		}
	}
	if calls := h.Calls(); len(calls) != 0 {
		t.Errorf("the handler was called: %q", calls)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="control request" op=restart names=[cache] caller_uid=65534 caller_pid=`) ||
		!strings.Contains(logs.String(), "result=denied") {
		t.Errorf("denied request not logged with its caller:\n%s", logs)
	}

	// The same from root: the command is shown.
	if resp := runClient(t, 0, srv.Path(), OpStatus); resp.Status.Children[0].Command == nil {
		t.Errorf("root does not see main's command")
	}
}

// A server that runs as the overflow uid does not count a client of that
// uid as its own: status without commands, restart denied; root may.
func TestServerAsOverflowUID(t *testing.T) {
	requireRoot(t)
	dir := reapertest.PublicDir(t)
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	path := dir + "/control.sock"
	cmd := helperCmd(t, nobody, "server", path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // the helper closes its server and exits
		cmd.Wait()
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("socket after the helper server closed: %v", err)
		}
	}()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "listening\n" {
		cmd.Process.Kill()
		t.Fatalf("helper server: %q %v", line, err)
	}

	resp := runClient(t, nobody, path, OpRestart)
	if resp.OK || resp.Error.Kind != KindDenied || !strings.Contains(resp.Error.Message, "mainstay's own uid (65534)") {
		t.Errorf("restart as nobody of a server run as nobody: %+v", resp.Error)
	}
	resp = runClient(t, nobody, path, OpStatus)
	if !resp.OK || resp.Status.Children[0].Command != nil {
		t.Errorf("status as nobody of a server run as nobody: %+v", resp)
	}
	if resp := runClient(t, 0, path, OpRestart); !resp.OK {
		t.Errorf("restart as root: %+v", resp.Error)
	}
}
