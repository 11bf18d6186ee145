package lifecycle

import (
	"os"
	"path/filepath"

	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadyFileRefusesForeign: at start, only nothing or mainstay's own
// files (left by a run that was killed) may be at PATH and PATH.state;
// another file, a directory or a symlink there is refused, and left alone.
func TestReadyFileRefusesForeign(t *testing.T) {
	type setup func(t *testing.T, path string)
	file := func(content string) setup {
		return func(t *testing.T, path string) { writeTestFile(t, path, content) }
	}
	dir := func(t *testing.T, path string) {
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(t *testing.T, path string) {
		target := filepath.Join(t.TempDir(), "target")
		writeTestFile(t, target, "ready\n")
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
	}
	dangling := func(t *testing.T, path string) {
		if err := os.Symlink(filepath.Join(t.TempDir(), "nowhere"), path); err != nil {
			t.Fatal(err)
		}
	}
	fifo := func(t *testing.T, path string) {
		if err := mkfifo(path); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name        string
		ready, stat setup
		want        string // "" accepts
	}{
		{name: "nothing"},
		{name: "own stale files", ready: file("ready\n"), stat: file("ready 4242\n")},
		{name: "own stale state starting", stat: file("starting 1\n")},
		{name: "own stale state stopping", stat: file("stopping 77\n")},
		{name: "empty file", ready: file(""), want: "not written by mainstay"},
		{name: "other file", ready: file("precious data\n"), want: "not written by mainstay"},
		{name: "ready without newline", ready: file("ready"), want: "not written by mainstay"},
		{name: "directory", ready: dir, want: "is a directory"},
		{name: "symlink", ready: link, want: "is a symlink"},
		{name: "dangling symlink", ready: dangling, want: "is a symlink"},
		{name: "fifo", ready: fifo, want: "not a regular file"},
		{name: "other state file", stat: file("hello\n"), want: "not written by mainstay"},
		{name: "state bad pid", stat: file("ready x\n"), want: "not written by mainstay"},
		{name: "state directory", stat: dir, want: "is a directory"},
		{name: "state symlink", stat: link, want: "is a symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ready")
			if tc.ready != nil {
				tc.ready(t, path)
			}
			if tc.stat != nil {
				tc.stat(t, path+".state")
			}
			before := snapshot(t, filepath.Dir(path))
			f, err := openReadyFile("--ready-file", path)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if err := f.set(stateStarting); err != nil {
					t.Fatal(err)
				}
				if got := mustReadState(t, path); got != stateStarting {
					t.Errorf("state %q, want starting", got)
				}
				f.clear()
				return
			}
			if err == nil {
				f.close()
				t.Fatal("accepted")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "--ready-file: ") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line starting --ready-file: and saying %q", msg, tc.want)
			}
			if after := snapshot(t, filepath.Dir(path)); after != before {
				t.Errorf("directory changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestOnceMarkerKinds: only a regular file at the marker path counts as
// done; a symlink (even to a regular file) or a directory is refused.
func TestOnceMarkerKinds(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
		done bool
		want string
	}{
		{name: "absent", make: func(*testing.T, string) {}},
		{name: "regular", make: func(t *testing.T, p string) { writeTestFile(t, p, "") }, done: true},
		{name: "symlink to a file", make: func(t *testing.T, p string) {
			target := filepath.Join(t.TempDir(), "x")
			writeTestFile(t, target, "")
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}, want: "is a symlink"},
		{name: "dangling symlink", make: func(t *testing.T, p string) {
			if err := os.Symlink("/nonexistent", p); err != nil {
				t.Fatal(err)
			}
		}, want: "is a symlink"},
		{name: "directory", make: func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, want: "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "done")
			tc.make(t, path)
			m, err := openOnceMarker("--once-marker", path)
			if tc.want != "" {
				if err == nil || !strings.HasPrefix(err.Error(), "--once-marker: ") || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %v, want --once-marker: ... %s", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.close()
			if m.done != tc.done {
				t.Errorf("done %v, want %v", m.done, tc.done)
			}
		})
	}
}

// TestStateFilesMissingDir: a directory that does not exist is reported
// as such, not as "not a directory".
func TestStateFilesMissingDir(t *testing.T) {
	base := t.TempDir()
	writeTestFile(t, filepath.Join(base, "file"), "")
	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(base, "absent"), "does not exist"},
		{filepath.Join(base, "file"), "is not a directory"},
	} {
		if _, err := openReadyFile("--ready-file", filepath.Join(tc.dir, "ready")); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ready file in %s: %v, want %q", tc.dir, err, tc.want)
		}
		if _, err := openOnceMarker("--once-marker", filepath.Join(tc.dir, "done")); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("marker in %s: %v, want %q", tc.dir, err, tc.want)
		}
	}
}

// TestStateFilesDirSwapped: once opened, the directory is the one mainstay
// writes in even when its path is renamed and replaced by a symlink to
// another directory: nothing there is created or removed.
func TestStateFilesDirSwapped(t *testing.T) {
	base := t.TempDir()
	run := filepath.Join(base, "run")
	victim := filepath.Join(base, "victim")
	for _, d := range []string{run, victim} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeTestFile(t, filepath.Join(victim, "ready"), "ready\n")
	writeTestFile(t, filepath.Join(victim, "ready.state"), "ready 1\n")
	writeTestFile(t, filepath.Join(victim, "done"), "keep\n")
	before := snapshot(t, victim)

	f, err := openReadyFile("--ready-file", filepath.Join(run, "ready"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := openOnceMarker("--once-marker", filepath.Join(run, "done"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if err := f.set(stateStarting); err != nil {
		t.Fatal(err)
	}
	// main swaps the directory for a symlink to the victim.
	moved := filepath.Join(base, "run.old")
	if err := os.Rename(run, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, run); err != nil {
		t.Fatal(err)
	}
	// And plants a link at the ready path in the directory it moved.
	if err := os.Symlink(filepath.Join(victim, "ready"), filepath.Join(moved, "ready")); err != nil {
		t.Fatal(err)
	}
	if err := f.set(stateReady); err != nil {
		t.Fatal(err)
	}
	if err := m.write("now\n"); err != nil {
		t.Fatal(err)
	}
	if got := readTestFile(t, filepath.Join(moved, "ready")); got != "ready\n" {
		t.Errorf("moved dir's ready = %q", got)
	}
	if got := readTestFile(t, filepath.Join(moved, "done")); got != "now\n" {
		t.Errorf("moved dir's marker = %q", got)
	}
	if err := f.set(stateStopping); err != nil {
		t.Fatal(err)
	}
	f.clear()
	if after := snapshot(t, victim); after != before {
		t.Errorf("victim directory changed:\nbefore %s\nafter  %s", before, after)
	}
	if got := snapshot(t, moved); got != "done=now\n;" {
		t.Errorf("moved directory holds %s, want only the marker", got)
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snapshot lists dir's entries with their kind and, for regular files,
// their content.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			b.WriteString(e.Name() + "->" + l)
		case e.IsDir():
			b.WriteString(e.Name() + "/")
		case !e.Type().IsRegular():
			b.WriteString(e.Name() + "?")
		default:
			c, _ := os.ReadFile(p)
			b.WriteString(e.Name() + "=" + string(c))
		}
		b.WriteString(";")
	}
	return b.String()
}

func mkfifo(path string) error { return unix.Mkfifo(path, 0o644) }
