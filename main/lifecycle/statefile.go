package lifecycle

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/mainstay-dev/mainstay/reaper"
	"golang.org/x/sys/unix"

	"github.com/mainstay-dev/mainstay/main/plan"
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

	// StateReady is what [ReadState] says of a ready mainstay.
	StateReady = stateReady
)

// fileDir is the directory of a --ready-file or --once-marker, resolved
// once when mainstay starts (symlinks in the configured path, such as
// /var/run, are followed then) and held open. Every later operation works
// relative to that descriptor with *at calls that never follow a symlink
// in the last component: main may rename the directory, swap it for a
// symlink or plant links in it, and root mainstay still neither reads,
// creates nor removes a file anywhere else.
type fileDir struct {
	path string // as resolved at start-up, for messages
	fd   int    // O_PATH|O_DIRECTORY
}

// openDir opens the directory that file is in. flag names the flag (or
// variable) in the error.
func openDir(flag, file string) (*fileDir, error) {
	dir := filepath.Dir(filepath.Clean(file))
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("%s: directory %s does not exist", flag, dir)
	case errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("%s: %s is not a directory", flag, dir)
	case err != nil:
		return nil, fmt.Errorf("%s: cannot open directory %s: %v", flag, dir, err)
	}
	return &fileDir{path: dir, fd: fd}, nil
}

func (d *fileDir) close() { unix.Close(d.fd) }

// kind is what is at name in d, without following a symlink: 0 when
// nothing is there, else the S_IFMT bits.
func (d *fileDir) kind(name string) (uint32, error) {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return st.Mode & unix.S_IFMT, nil
}

// read returns the first max bytes of the regular file name in d; a
// symlink, a FIFO or anything else but a regular file is an error.
func (d *fileDir) read(name string, max int) ([]byte, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errors.New("not a regular file")
	}
	b := make([]byte, max)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

// remove unlinks name in d (the link itself, should it be one); nothing
// there is not an error.
func (d *fileDir) remove(name string) error {
	err := unix.Unlinkat(d.fd, name, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// write replaces name in d with content: written and synced to a new
// temporary file in d, renamed over name (which replaces a symlink there,
// never its target), and d synced, so a reader or a crash sees the old
// file or the new one.
func (d *fileDir) write(name, content string) error {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := "." + name + "." + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return d.pathError(name, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	err = func() error {
		defer f.Close()
		if _, err := f.WriteString(content); err != nil {
			return err
		}
		if err := f.Chmod(0o644); err != nil {
			return err
		}
		return f.Sync()
	}()
	if err == nil {
		err = unix.Renameat(d.fd, tmp, d.fd, name)
	}
	if err != nil {
		unix.Unlinkat(d.fd, tmp, 0)
		return d.pathError(name, err)
	}
	return d.pathError(name, d.sync())
}

// pathError names the file the user gave, name in d, in err, rather than
// the temporary file it happened to (a full disk, a read-only one).
func (d *fileDir) pathError(name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s: %w", filepath.Join(d.path, name), err)
}

// sync flushes d's entries to disk. An O_PATH descriptor cannot be synced:
// d is opened for reading through it.
func (d *fileDir) sync() error {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fsync(fd)
}

// readyFile publishes mainstay's state. PATH exists only while main is
// ready and every helper succeeded; PATH.state always holds "STATE PID"
// while mainstay runs, so health can tell starting from stopping from gone.
// Every write is atomic (a temporary file renamed into place). Once
// stopping, the state never goes back to ready. A nil *readyFile (no
// --ready-file) publishes nothing.
type readyFile struct {
	path string // as configured, for log lines
	dir  *fileDir
	name string // base name of the ready file in dir

	mu       sync.Mutex
	stopping bool
}

// openReadyFile opens path's directory for --ready-file (flag names where
// path came from) and checks what is at path and path.state: nothing, or a
// file in mainstay's own format that an earlier run left when it was
// killed, which set replaces. Anything else (another file, a directory, a
// symlink) is refused: mainstay would delete what it did not write.
func openReadyFile(flag, path string) (*readyFile, error) {
	if path == "" {
		return nil, nil
	}
	d, err := openDir(flag, path)
	if err != nil {
		return nil, err
	}
	f := &readyFile{path: path, dir: d, name: filepath.Base(filepath.Clean(path))}
	for _, c := range []struct {
		name string
		ours func([]byte) bool
	}{{f.name, isReadyContent}, {f.stateName(), isStateContent}} {
		if err := checkOwn(d, c.name, c.ours); err != nil {
			d.close()
			return nil, fmt.Errorf("%s: %s: %v; mainstay replaces only a ready file it wrote itself: remove it or choose another path", flag, filepath.Join(d.path, c.name), err)
		}
	}
	return f, nil
}

// checkOwn fails unless name in d is absent or a regular file whose
// content ours accepts.
func checkOwn(d *fileDir, name string, ours func([]byte) bool) error {
	kind, err := d.kind(name)
	switch {
	case err != nil:
		return err
	case kind == 0:
		return nil
	case kind == unix.S_IFLNK:
		return errors.New("is a symlink")
	case kind == unix.S_IFDIR:
		return errors.New("is a directory")
	case kind != unix.S_IFREG:
		return errors.New("is not a regular file")
	}
	b, err := d.read(name, 64)
	if err != nil {
		return err
	}
	if !ours(b) {
		return errors.New("exists and was not written by mainstay")
	}
	return nil
}

// isReadyContent is what the ready file holds.
func isReadyContent(b []byte) bool { return string(b) == "ready\n" }

// isStateContent is what the state file holds: "STATE PID START\n", or
// "STATE PID\n" as a mainstay before the start time was added wrote it.
func isStateContent(b []byte) bool {
	_, _, _, ok := parseState(b)
	return ok
}

// parseState reads the state file's content: the state, the PID of the
// mainstay that wrote it, and that process's start time (clock ticks
// after boot, from /proc/PID/stat; 0 in the older form).
func parseState(b []byte) (state string, pid int, start uint64, ok bool) {
	s, ok := strings.CutSuffix(string(b), "\n")
	if !ok {
		return "", 0, 0, false
	}
	f := strings.Split(s, " ")
	if len(f) != 2 && len(f) != 3 {
		return "", 0, 0, false
	}
	state = f[0]
	pid, err := strconv.Atoi(f[1])
	if err != nil || pid <= 0 {
		return "", 0, 0, false
	}
	if len(f) == 3 {
		if start, err = strconv.ParseUint(f[2], 10, 64); err != nil {
			return "", 0, 0, false
		}
	}
	known := state == stateStarting || state == stateReady || state == stateStopping || state == stateRestarting
	return state, pid, start, known
}

// self is what the state file says of this process: its PID and start
// time, which name it across PID reuse. After "docker kill" and "docker
// start" the new mainstay is PID 1 again, as the killed one was; its
// start time tells them apart (the boot is the same).
func self() (pid int, start uint64) {
	pid = os.Getpid()
	s, _ := reaper.ReadStat(pid)
	return pid, s.Start
}

func (f *readyFile) stateName() string { return f.name + ".state" }

// set publishes state.
func (f *readyFile) set(state string) error {
	if f == nil {
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
		if err := f.dir.remove(f.name); err != nil {
			return err
		}
	}
	pid, start := self()
	if err := f.dir.write(f.stateName(), fmt.Sprintf("%s %d %d\n", state, pid, start)); err != nil {
		return err
	}
	if state == stateReady {
		return f.dir.write(f.name, "ready\n")
	}
	return nil
}

// clear removes both files, mainstay is gone, and closes the directory.
func (f *readyFile) clear() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dir == nil {
		return
	}
	f.stopping = true
	f.dir.remove(f.name)
	f.dir.remove(f.stateName())
	f.dir.close()
	f.dir = nil
}

// close closes the directory and leaves the files as they are.
func (f *readyFile) close() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dir != nil {
		f.dir.close()
		f.dir = nil
	}
	f.stopping = true
}

// onceMarker is --once-marker: its directory held open from start-up, and
// whether the marker was there then. It is looked at once, before the
// first child starts, so main cannot change the answer later.
type onceMarker struct {
	path string // as configured, for log lines
	dir  *fileDir
	name string
	done bool // a regular file was at path at start-up: skip the helpers
}

// openOnceMarker opens path's directory for --once-marker (flag names
// where path came from) and looks at path without following a symlink:
// only a regular file counts as done; a symlink, a directory or anything
// else there is refused.
func openOnceMarker(flag, path string) (*onceMarker, error) {
	if path == "" {
		return nil, nil
	}
	d, err := openDir(flag, path)
	if err != nil {
		return nil, err
	}
	m := &onceMarker{path: path, dir: d, name: filepath.Base(filepath.Clean(path))}
	kind, err := d.kind(m.name)
	var bad string
	switch {
	case err != nil:
		bad = err.Error()
	case kind == 0:
	case kind == unix.S_IFREG:
		m.done = true
	case kind == unix.S_IFLNK:
		bad = "is a symlink"
	case kind == unix.S_IFDIR:
		bad = "is a directory"
	default:
		bad = "is not a regular file"
	}
	if bad != "" {
		d.close()
		return nil, fmt.Errorf("%s: %s: %s; the marker must be a regular file: remove it or choose another path", flag, filepath.Join(d.path, m.name), bad)
	}
	return m, nil
}

// write creates the marker.
func (m *onceMarker) write(content string) error { return m.dir.write(m.name, content) }

func (m *onceMarker) close() {
	if m != nil {
		m.dir.close()
	}
}

// stateFiles are the files mainstay writes, opened before the first child
// starts. A nil field is a flag not given.
type stateFiles struct {
	ready  *readyFile
	marker *onceMarker
}

// openStateFiles opens --ready-file and --once-marker and checks what is
// at their paths. An error is bad usage (exit 2, nothing started).
func openStateFiles(p *plan.Plan) (*stateFiles, error) {
	rf, err := openReadyFile(p.ReadyFileSource, p.ReadyFile)
	if err != nil {
		return nil, err
	}
	m, err := openOnceMarker(p.OnceMarkerSource, p.OnceMarker)
	if err != nil {
		rf.close()
		return nil, err
	}
	return &stateFiles{ready: rf, marker: m}, nil
}

// ReadyFileHealth is "mainstay health --ready-file PATH": it prints the
// state published at path (or why it cannot be trusted) and returns the
// exit status, 0 when ready, else 1.
func ReadyFileHealth(path string, stdout io.Writer) int {
	state, err := ReadState(path)
	if err != nil {
		fmt.Fprintf(stdout, "not ready: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, state)
	if state != StateReady {
		return 1
	}
	return 0
}

// ReadState is what "mainstay health" reports for the ready file at path:
// the state a live mainstay published there, or "gone". Another user
// (main's) may own the directory and put anything at PATH or PATH.state:
// both are read as mainstay's own start-up reads them, through the
// directory without following a symlink, regular files only, at most 64
// bytes, never blocking (a FIFO is refused). Anything else is an error,
// which health reports as "not ready".
func ReadState(path string) (string, error) {
	if _, err := os.Stat(filepath.Dir(path)); errors.Is(err, fs.ErrNotExist) {
		return stateGone, nil
	}
	d, err := openDir("--ready-file", path)
	if err != nil {
		return "", err
	}
	defer d.close()
	name := filepath.Base(filepath.Clean(path))
	b, err := d.read(name+".state", 64)
	if errors.Is(err, unix.ENOENT) {
		return stateGone, nil
	}
	if err != nil {
		return "", fmt.Errorf("%s.state: %w", path, err)
	}
	state, pid, start, ok := parseState(b)
	if !ok {
		return "", fmt.Errorf("%s.state: not written by mainstay", path)
	}
	if !running(pid, start) {
		return stateGone, nil // left behind by a mainstay that was killed
	}
	if state == stateReady {
		kind, err := d.kind(name)
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		switch kind {
		case 0:
			return stateStopping, nil // between removing the ready file and writing the state
		case unix.S_IFREG:
		default:
			return "", fmt.Errorf("%s: not a regular file", path)
		}
	}
	return state, nil
}

// running reports whether the process that wrote a state file, pid
// started at start, is still alive (not a zombie): a process with its PID
// that started at another time is not it. The older form, without a
// start time, can only name a PID.
func running(pid int, start uint64) bool {
	s, err := reaper.ReadStat(pid)
	return err == nil && !s.Exited() && (start == 0 || s.Start == start)
}
