//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestRedisLifecycle: redis-server as main under --user redis, redis-cli
// helpers seed keys once it answers PING, health follows, and SIGTERM makes
// Redis save and exit 0.
func TestRedisLifecycle(t *testing.T) {
	dir := dbDir(t, "redis")
	port := freePort(t)
	// -e: exit non-zero on an error reply, such as LOADING while Redis
	// reads its dataset; without it a PING probe passes too early.
	cli := fmt.Sprintf("redis-cli -e -h 127.0.0.1 -p %d", port)
	readyFile := filepath.Join(dir, "ready")
	r := start(t, pid1, dir,
		"--log-format", "json", "--user", "redis",
		"--ready", fmt.Sprintf("tcp:127.0.0.1:%d", port),
		"--ready", "exec:"+cli+" ping",
		"--ready-file", readyFile,
		"--helper", cli+" SET greeting 'hello, world'",
		"--helper", cli+" RPUSH queue a b c",
		"--", "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--save", "3600 1", "--appendonly", "no")
	waitFor(t, long, "the ready file", func() bool { return exists(readyFile) })
	if state, code := health(t, r, readyFile); state != "ready" || code != 0 {
		t.Errorf("health: %q exit %d, want ready exit 0", state, code)
	}
	get := func(args ...string) string {
		out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port)}, args...)...).Output()
		if err != nil {
			t.Fatalf("redis-cli %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	if got := get("GET", "greeting"); got != "hello, world" {
		t.Errorf("GET greeting = %q", got)
	}
	if got := get("LRANGE", "queue", "0", "-1"); got != "a\nb\nc" {
		t.Errorf("LRANGE queue = %q", got)
	}

	r.signal(syscall.SIGTERM)
	if code := r.wait(long); code != 0 {
		t.Fatalf("mainstay exited %d after SIGTERM, want 0", code)
	}
	out := r.stderr() + readFile(filepath.Join(dir, "mainstay.out"))
	for _, want := range []string{"Received SIGTERM scheduling shutdown", "DB saved on disk", "ready to exit, bye bye"} {
		if !strings.Contains(out, want) {
			t.Errorf("redis did not log %q:\n%s", want, out)
		}
	}
	if !exists(filepath.Join(dir, "dump.rdb")) {
		t.Error("no dump.rdb: redis did not save on shutdown")
	}
	if exists(readyFile) {
		t.Error("ready file left behind")
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
