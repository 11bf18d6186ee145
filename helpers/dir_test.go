package helpers_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mainstay-dev/mainstay/helpers"
	"github.com/mainstay-dev/mainstay/reaper/reapertest"
)

func TestDir(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\nexit 0\n"
	for name, mode := range map[string]os.FileMode{"10-b.sh": 0o755, "01-a.sh": 0o700, "05-not-executable.sh": 0o644} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "07-directory"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "01-a.sh"), filepath.Join(dir, "20-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "absent"), filepath.Join(dir, "30-dangling")); err != nil {
		t.Fatal(err)
	}
	log, logs := reapertest.NewLog()
	tasks, err := helpers.Dir(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	var got []helpers.Task
	for _, name := range []string{"01-a.sh", "10-b.sh", "20-link"} {
		p := filepath.Join(dir, name)
		got = append(got, helpers.Task{Name: p, Argv: []string{p}})
	}
	if !reflect.DeepEqual(tasks, got) {
		t.Errorf("Dir = %v, want %v", tasks, got)
	}
	var skipped []string
	for _, r := range logs.Records(t) {
		if strings.HasPrefix(r["msg"].(string), "skipping helpers-dir entry") && r["level"] == "WARN" {
			skipped = append(skipped, filepath.Base(r["path"].(string)))
		}
	}
	if want := []string{"05-not-executable.sh", "07-directory", "30-dangling"}; !reflect.DeepEqual(skipped, want) {
		t.Errorf("skipped with a warning: %q, want %q", skipped, want)
	}

	t.Run("absent directory", func(t *testing.T) {
		_, err := helpers.Dir(filepath.Join(dir, "absent"), log)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "helpers directory") {
			t.Errorf("Dir = %v, want a helpers directory error that is fs.ErrNotExist", err)
		}
	})
}

func TestRunOnContinue(t *testing.T) {
	var failed []string
	tasks := []helpers.Task{sh("exit 3"), sh("true"), {Name: "missing", Argv: []string{"mainstay-no-such-helper"}}}
	log, _ := reapertest.NewLog()
	err := helpers.Run(context.Background(), tasks, helpers.Config{
		OnFailure: helpers.Continue, Runner: runner, Log: log,
		OnContinue: func(e *helpers.Error) { failed = append(failed, fmt.Sprintf("%s: %d", e.Task.Name, code(e))) },
	})
	if err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if want := []string{tasks[0].Name + ": 3", "missing: 127"}; !reflect.DeepEqual(failed, want) {
		t.Errorf("OnContinue saw %q, want %q", failed, want)
	}
}

// redirect points os.Stdout and os.Stderr at files for the rest of the
// test and returns their paths.
func redirect(t *testing.T) (stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	stdout, stderr = filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr")
	out, err := os.Create(stdout)
	if err != nil {
		t.Fatal(err)
	}
	errF, err := os.Create(stderr)
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = out, errF
	t.Cleanup(func() {
		os.Stdout, os.Stderr = oldOut, oldErr
		out.Close()
		errF.Close()
	})
	return stdout, stderr
}

func prefixed(t helpers.Task, prefix string) helpers.Task {
	t.Prefix = prefix
	return t
}

func TestRunPrefix(t *testing.T) {
	tests := []struct {
		name             string
		tasks            []helpers.Task
		wantOut, wantErr string
	}{
		{
			name: "lines prefixed with each task's prefix",
			tasks: []helpers.Task{
				prefixed(sh(`echo one; printf 'unfinished'`), "[sh#1] "),
				prefixed(helpers.Task{Name: "printf", Argv: []string{"printf", `a\n\nb\n`}}, "[printf] "),
				prefixed(sh(`echo oops >&2`), "[sh#3] "),
			},
			wantOut: "[sh#1] one\n[sh#1] unfinished\n[printf] a\n[printf] \n[printf] b\n",
			wantErr: "[sh#3] oops\n",
		},
		{
			name:    "empty prefix leaves output alone",
			tasks:   []helpers.Task{sh(`echo one; printf 'unfinished'; echo two >&2`)},
			wantOut: "one\nunfinished",
			wantErr: "two\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr := redirect(t)
			log, _ := reapertest.NewLog()
			if err := helpers.Run(context.Background(), tt.tasks, helpers.Config{OnFailure: helpers.Stop, Runner: runner, Log: log}); err != nil {
				t.Fatalf("Run = %v", err)
			}
			if got := readFile(t, stdout); got != tt.wantOut {
				t.Errorf("stdout = %q, want %q", got, tt.wantOut)
			}
			if got := readFile(t, stderr); got != tt.wantErr {
				t.Errorf("stderr = %q, want %q", got, tt.wantErr)
			}
		})
	}
}
