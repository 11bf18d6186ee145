package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runMainstay runs mainstay (this test binary, see TestMain) with args in a
// child process, with env added to the environment, and returns its exit
// code and output. It fails the test when the child does not exit within 60s.
func runMainstay(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, args...)
	// GORACE: a race-enabled binary otherwise sleeps 1s before exiting 0.
	cmd.Env = append(append(os.Environ(), runChildEnv+"=1", "GORACE=atexit_sleep_ms=0"), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// The child's own children may outlive it on a failure; don't let them
	// hold its output open.
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("mainstay %q did not exit within 60s; stderr:\n%s", args, errOut.String())
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("mainstay %q: %v", args, err)
	}
	t.Logf("mainstay %q: exit %d\nstdout: %q\nstderr:\n%s", args, code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

// closedAddr is a 127.0.0.1 address nothing listens on: listen, then close.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// pidFrom reads the PID a shell wrote to file with "echo $$ > file".
func pidFrom(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("main never wrote its PID: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func mustMkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Exit codes of a whole run, from start to exit, in a child process.
func TestRunExitCodes(t *testing.T) {
	type setup struct {
		args  []string
		env   []string
		check func(t *testing.T, stdout, stderr string) // optional
	}
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string) setup
		wantCode int
		stderr   []string // fragments mainstay's stderr must contain
	}{
		{
			name: "main's exit code, output untouched",
			setup: func(t *testing.T, dir string) setup {
				return setup{
					args: []string{"--", "sh", "-c", `echo "to stdout"; echo "to stderr" >&2; exit 3`},
					check: func(t *testing.T, stdout, stderr string) {
						if stdout != "to stdout\n" {
							t.Errorf("stdout = %q, want only main's %q", stdout, "to stdout\n")
						}
						for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
							if line != "to stderr" && !strings.HasPrefix(line, "mainstay: ") {
								t.Errorf("stderr line %q is neither main's nor marked as mainstay's", line)
							}
						}
					},
				}
			},
			wantCode: 3,
		},
		{
			name: "main from --main",
			setup: func(t *testing.T, dir string) setup {
				return setup{args: []string{"--main", `sh -c 'exit 4'`}}
			},
			wantCode: 4,
		},
		{
			name: "main killed by a signal",
			setup: func(t *testing.T, dir string) setup {
				return setup{args: []string{"--", "sh", "-c", "kill -KILL $$"}}
			},
			wantCode: 137,
		},
		{
			name: "main not found",
			setup: func(t *testing.T, dir string) setup {
				return setup{args: []string{"--", "mainstay-no-such-program"}}
			},
			wantCode: 127, stderr: []string{"mainstay: error: main command: mainstay-no-such-program: not found"},
		},
		{
			name: "main not executable",
			setup: func(t *testing.T, dir string) setup {
				f := filepath.Join(dir, "not-executable")
				if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return setup{args: []string{"--", f}}
			},
			wantCode: 126, stderr: []string{"mainstay: error: main command: ", "cannot execute: uid ", "may not execute it (mode -rw-r--r--"},
		},
		{
			name: "readiness, then helpers in order, then main in the foreground",
			setup: func(t *testing.T, dir string) setup {
				log, fifo, up := filepath.Join(dir, "log"), filepath.Join(dir, "fifo"), filepath.Join(dir, "up")
				mustMkfifo(t, fifo)
				return setup{
					args: []string{
						"--ready", "file:" + up,
						"--helper", `sh -c 'echo "h1, a" >> "$0"' ` + log,
						"--helper", `sh -c 'echo h2 >> "$0"; echo go > "$1"' ` + log + " " + fifo,
						"--", "sh", "-c", `echo main >> "$0"; touch "$1"; read x < "$2"; echo "main got $x" >> "$0"; exit 7`, log, up, fifo,
					},
					check: func(t *testing.T, _, _ string) {
						b, _ := os.ReadFile(log)
						if want := "main\nh1, a\nh2\nmain got go\n"; string(b) != want {
							t.Errorf("log = %q, want %q", b, want)
						}
					},
				}
			},
			wantCode: 7,
		},
		{
			name: "helpers from MAINSTAY_HELPER keep commas and quotes",
			setup: func(t *testing.T, dir string) setup {
				log, fifo := filepath.Join(dir, "log"), filepath.Join(dir, "fifo")
				mustMkfifo(t, fifo)
				return setup{
					env: []string{"MAINSTAY_HELPER=" + `sh -c 'printf "%s|" "$@" >> ` + log + `' sh "a, b" 'c "d"'` + "\n" +
						`sh -c 'echo > ` + fifo + `'`},
					args: []string{"--", "sh", "-c", `read x < "$0"; exit 0`, fifo},
					check: func(t *testing.T, _, _ string) {
						b, _ := os.ReadFile(log)
						if want := `a, b|c "d"|`; string(b) != want {
							t.Errorf("helper argv = %q, want %q", b, want)
						}
					},
				}
			},
			wantCode: 0,
		},
		{
			name: "readiness timeout stops main",
			setup: func(t *testing.T, dir string) setup {
				pidFile, addr := filepath.Join(dir, "pid"), closedAddr(t)
				return setup{
					args: []string{"--ready", "tcp:" + addr, "--ready-timeout=500ms", "--", "sh", "-c", `echo $$ > "$0"; exec sleep 100`, pidFile},
					check: func(t *testing.T, _, stderr string) {
						if pid := pidFrom(t, pidFile); alive(pid) {
							t.Errorf("main (PID %d) outlived mainstay", pid)
						}
						if !strings.Contains(stderr, "tcp:"+addr) {
							t.Errorf("stderr does not name the failing probe tcp:%s", addr)
						}
					},
				}
			},
			wantCode: 124, stderr: []string{"probe still failing", "connection refused"},
		},
		{
			name: "--stop-signal reaches main",
			setup: func(t *testing.T, dir string) setup {
				got := filepath.Join(dir, "got")
				return setup{
					args: []string{"--stop-signal", "INT", "--ready", "tcp:" + closedAddr(t), "--ready-timeout=1s", "--",
						"sh", "-c", `trap 'echo INT > "$0"; exit 0' INT; trap 'echo TERM > "$0"; exit 0' TERM; while :; do sleep 0.05; done`, got},
					check: func(t *testing.T, _, _ string) {
						b, _ := os.ReadFile(got)
						if string(b) != "INT\n" {
							t.Errorf("main got %q, want the stop signal INT", b)
						}
					},
				}
			},
			wantCode: 124,
		},
		{
			name: "probe that cannot run",
			setup: func(t *testing.T, dir string) setup {
				return setup{args: []string{"--ready", "exec:mainstay-no-such-probe", "--", "sleep", "100"}}
			},
			wantCode: 127, stderr: []string{"exec:mainstay-no-such-probe"},
		},
		{
			name: "main exits during readiness",
			setup: func(t *testing.T, dir string) setup {
				return setup{args: []string{"--ready", "tcp:" + closedAddr(t), "--", "sh", "-c", "exit 9"}}
			},
			wantCode: 9, stderr: []string{"main exited during start-up"},
		},
		{
			name: "helper fails: its code, main stopped, later helpers skipped",
			setup: func(t *testing.T, dir string) setup {
				pidFile, later := filepath.Join(dir, "pid"), filepath.Join(dir, "later")
				return setup{
					// The helpers wait until main has written its PID
					// (renamed into place, so never seen half-written).
					args: []string{"--ready", "file:" + pidFile, "--helper", "sh -c 'exit 5'", "--helper", "touch " + later,
						"--", "sh", "-c", `echo $$ > "$0.tmp"; mv "$0.tmp" "$0"; exec sleep 100`, pidFile},
					check: func(t *testing.T, _, _ string) {
						if pid := pidFrom(t, pidFile); alive(pid) {
							t.Errorf("main (PID %d) outlived mainstay", pid)
						}
						if _, err := os.Stat(later); err == nil {
							t.Error("the helper after the failed one ran")
						}
					},
				}
			},
			wantCode: 5, stderr: []string{"helper failed", "exit status 5"},
		},
		{
			name: "helper killed by a signal",
			setup: func(t *testing.T, dir string) setup {
				return setup{args: []string{"--helper", "sh -c 'kill -TERM $$'", "--", "sleep", "100"}}
			},
			wantCode: 143,
		},
		{
			name: "helper timeout",
			setup: func(t *testing.T, dir string) setup {
				return setup{args: []string{"--helper-timeout=300ms", "--helper", "sleep 100", "--", "sleep", "100"}}
			},
			wantCode: 124, stderr: []string{"timed out after 300ms"},
		},
		{
			name: "helper not found",
			setup: func(t *testing.T, dir string) setup {
				return setup{args: []string{"--helper", "mainstay-no-such-helper", "--", "sleep", "100"}}
			},
			wantCode: 127, stderr: []string{"mainstay-no-such-helper"},
		},
		{
			name: "helper failure under continue",
			setup: func(t *testing.T, dir string) setup {
				fifo := filepath.Join(dir, "fifo")
				mustMkfifo(t, fifo)
				return setup{
					args: []string{"--on-helper-failure=continue", "--helper", "sh -c 'exit 5'", "--helper", "sh -c 'echo > " + fifo + "'",
						"--", "sh", "-c", `read x < "$0"; exit 6`, fifo},
				}
			},
			wantCode: 6, stderr: []string{"helper failed; continuing"},
		},
		{
			name: "json log lines",
			setup: func(t *testing.T, dir string) setup {
				return setup{
					args: []string{"--log-format=json", "--", "true"},
					check: func(t *testing.T, _, stderr string) {
						lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
						for _, line := range lines {
							var rec map[string]any
							if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["logger"] != "mainstay" {
								t.Errorf("stderr line %q is not a JSON record with logger mainstay", line)
							}
						}
					},
				}
			},
			wantCode: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.setup(t, t.TempDir())
			code, stdout, stderr := runMainstay(t, s.env, s.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q", w)
				}
			}
			if s.check != nil {
				s.check(t, stdout, stderr)
			}
		})
	}
}

func TestRunVersion(t *testing.T) {
	code, stdout, _ := runMainstay(t, nil, "--version")
	if code != 0 || strings.Count(stdout, "\n") != 1 || strings.TrimSpace(stdout) == "" {
		t.Errorf("--version: exit %d, stdout %q; want exit 0 and one line", code, stdout)
	}
}
