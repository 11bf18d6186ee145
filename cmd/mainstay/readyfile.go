package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// States published for "mainstay health". "gone" is never written: it is
// what health reports when no live mainstay published a state.
const (
	stateStarting = "starting"
	stateReady    = "ready"
	stateStopping = "stopping"
	// stateRestarting: started up, but an essential sidecar is restarting.
	stateRestarting = "restarting"
	stateGone       = "gone"
)

// readyFile publishes mainstay's state. PATH exists only while main is
// ready and every helper succeeded; PATH.state always holds "STATE PID"
// while mainstay runs, so health can tell starting from stopping from gone.
// Every write is atomic (a temporary file renamed into place). Once
// stopping, the state never goes back to ready. The zero path disables it.
type readyFile struct {
	path string

	mu       sync.Mutex
	stopping bool
}

func (f *readyFile) statePath() string { return f.path + ".state" }

// set publishes state.
func (f *readyFile) set(state string) error {
	if f.path == "" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopping {
		return nil
	}
	f.stopping = state == stateStopping
	if state != stateReady {
		// Not ready: the ready file goes first, so no reader sees it
		// beside a state that says otherwise for long.
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := writeAtomic(f.statePath(), fmt.Sprintf("%s %d\n", state, os.Getpid())); err != nil {
		return err
	}
	if state == stateReady {
		return writeAtomic(f.path, "ready\n")
	}
	return nil
}

// clear removes both files: mainstay is gone.
func (f *readyFile) clear() {
	if f.path == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopping = true
	os.Remove(f.path)
	os.Remove(f.statePath())
}

// readState is what "mainstay health" reports for the ready file at path.
func readState(path string) string {
	b, err := os.ReadFile(path + ".state")
	if err != nil {
		return stateGone
	}
	state, pidText, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	pid, err := strconv.Atoi(pidText)
	if err != nil || !running(pid) {
		return stateGone // left behind by a mainstay that was killed
	}
	if state == stateReady {
		if _, err := os.Stat(path); err != nil {
			return stateStopping // between removing the ready file and writing the state
		}
	}
	return state
}

// running reports whether pid is a live process (not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// writeAtomic replaces path with content: written and synced to a
// temporary file in the same directory, then renamed over path, and the
// directory synced, so a reader or a crash sees the old file or the new one.
func writeAtomic(path, content string) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
