package readiness_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper/reapertest"
)

// mustParse parses spec or fails the test.
func mustParse(t *testing.T, spec string) readiness.Probe {
	t.Helper()
	p, err := readiness.Parse(spec)
	if err != nil {
		t.Fatalf("Parse(%q): %v", spec, err)
	}
	return p
}

func TestTCPCheck(t *testing.T) {
	open := listen(t, "127.0.0.1:0").Addr().String()
	tests := []struct {
		name    string
		spec    string
		wantErr string // "" when the probe must pass
	}{
		{"open port passes", "tcp:" + open, ""},
		{"url form passes", "tcp://" + open, ""},
		{"closed port fails", "tcp:" + closedPort(t), "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mustParse(t, tt.spec).Check(context.Background(), runner)
			checkErr(t, err, tt.wantErr)
			var pe *backoff.PermanentError
			if errors.As(err, &pe) {
				t.Errorf("a closed port may open later; got permanent error %v", err)
			}
		})
	}
}

func TestFileCheck(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "present")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		spec    string
		wantErr string
	}{
		{"present file passes", "file:" + present, ""},
		{"directory passes", "file:" + dir, ""},
		{"absent file fails", "file:" + filepath.Join(dir, "absent"), "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, mustParse(t, tt.spec).Check(context.Background(), runner), tt.wantErr)
		})
	}
}

func TestExecCheck(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		spec      string
		wantErr   string // "" when the probe must pass
		permanent bool
		is        error // errors.Is target, when set
	}{
		{name: "exit 0 passes", spec: "exec:true"},
		{name: "exit 0 with output passes", spec: `exec:sh -c 'echo out; echo err >&2'`},
		{name: "exit 1 fails", spec: "exec:false", wantErr: "exit status 1"},
		{name: "exit 3 without output", spec: "exec:sh -c 'exit 3'", wantErr: "exit status 3"},
		{
			name:    "last stderr line explains the failure",
			spec:    `exec:sh -c 'echo "on stdout"; echo "first line" >&2; echo "  the last line  " >&2; echo >&2; exit 1'`,
			wantErr: "exit status 1: the last line",
		},
		{
			name:    "long output keeps the last line",
			spec:    `exec:sh -c 'i=0; while [ $i -lt 200 ]; do echo "noise line $i" >&2; i=$((i+1)); done; echo "final words" >&2; exit 2'`,
			wantErr: "exit status 2: final words",
		},
		{name: "killed by a signal", spec: `exec:sh -c 'kill -KILL $$'`, wantErr: "killed by SIGKILL"},
		{
			name: "not found in PATH is permanent", spec: "exec:mainstay-no-such-program --flag",
			wantErr: "mainstay-no-such-program", permanent: true, is: exec.ErrNotFound,
		},
		{
			name: "absent path is permanent", spec: "exec:" + filepath.Join(dir, "absent"),
			wantErr: "no such file or directory", permanent: true, is: fs.ErrNotExist,
		},
		{
			name: "not executable is permanent", spec: "exec:" + notExec,
			wantErr: "permission denied", permanent: true, is: fs.ErrPermission,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mustParse(t, tt.spec).Check(context.Background(), runner)
			checkErr(t, err, tt.wantErr)
			var pe *backoff.PermanentError
			if got := errors.As(err, &pe); got != tt.permanent {
				t.Errorf("permanent = %v, want %v (err %v)", got, tt.permanent, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

// A grandchild that inherits the output pipe and outlives the probe must
// not hold the attempt up until it exits.
func TestExecCheckGrandchildKeepsOutputOpen(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	p := mustParse(t, `exec:sh -c 'sleep 100 & echo $! > `+pidFile+`'`)
	done := make(chan error, 1)
	go func() { done <- p.Check(context.Background(), runner) }()
	pid := reapertest.ReadPID(t, pidFile)
	reapertest.KillOnCleanupIfRunning(t, pid)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Check = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Check still waiting on the grandchild's output after 10s")
	}
}

// When ctx is done during an attempt, the command's whole process group is
// killed and Check returns the context's error.
func TestExecCheckContextDone(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	p := mustParse(t, `exec:sh -c 'sleep 100 & echo $! > `+pidFile+`; wait'`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Check(ctx, runner) }()
	pid := reapertest.ReadPID(t, pidFile)
	reapertest.KillOnCleanupIfRunning(t, pid)
	start, ok := reapertest.ProcStart(pid)
	if !ok {
		t.Fatalf("grandchild %d not running", pid)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Check = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Check did not return 10s after its context was cancelled")
	}
	reapertest.WaitGone(t, pid, start)
}

// checkErr fails unless err is nil when want is "", or contains want.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("Check = %v, want nil", err)
	case want != "" && err == nil:
		t.Errorf("Check = nil, want an error containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("Check = %q, want it to contain %q", err, want)
	}
}
