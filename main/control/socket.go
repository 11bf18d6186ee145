package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSunPath is the longest path a unix socket address holds (sun_path
// is 108 bytes, its NUL included).
const maxSunPath = 107

// socketFile is the socket's place in the file system, owned through the
// lock: the directory, held open from Listen on (O_PATH, as the state
// files' is: a later rename of the directory or a symlink put in its
// place changes nothing), the lock file, and which inode the socket is.
type socketFile struct {
	path     string // as given, cleaned: for messages
	dir      int    // O_PATH|O_DIRECTORY
	name     string // the socket's name in dir
	lock     int    // PATH.lock, flocked LOCK_EX; -1 once released
	dev, ino uint64 // the socket file bound
}

// lockName is the lock file's name beside the socket.
func (s *socketFile) lockName() string { return s.name + ".lock" }

// inDir is a path that reaches name through the held directory
// descriptor, for the calls that have no *at form (bind, chmod).
func (s *socketFile) inDir(name string) string {
	return "/proc/self/fd/" + strconv.Itoa(s.dir) + "/" + name
}

// openSocketFile takes path for a new socket: it creates the directory
// when missing, takes the lock on PATH.lock, and removes a socket file
// left at path (which the free lock proves stale). It removes nothing
// else.
func openSocketFile(path string) (*socketFile, error) {
	switch {
	case path == "":
		return nil, errors.New("empty path")
	case strings.HasPrefix(path, "@"):
		return nil, fmt.Errorf("%s: an abstract socket is never used (other containers of a pod, and the host under --network host, share that namespace): give a file path", path)
	case !filepath.IsAbs(path):
		return nil, fmt.Errorf("%s: not an absolute path", path)
	}
	path = filepath.Clean(path)
	if len(path) > maxSunPath {
		return nil, fmt.Errorf("%s: too long for a unix socket (%d bytes, at most %d)", path, len(path), maxSunPath)
	}
	dir, name := filepath.Split(path)
	if name == "" {
		return nil, fmt.Errorf("%s: not a file path", path)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: cannot create directory %s: %w", path, filepath.Clean(dir), err)
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot open directory %s: %w", path, filepath.Clean(dir), err)
	}
	s := &socketFile{path: path, dir: dfd, name: name, lock: -1}
	if err := s.takeLock(); err != nil {
		s.close()
		return nil, err
	}
	if err := s.removeStale(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// what describes a file type for messages.
func what(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	default:
		return "a device"
	}
}

// takeLock opens (or creates) PATH.lock, a regular file and nothing else
// (no symlink followed, no device opened), and locks it without waiting.
// The lock file is never removed: a server that unlinked it could race a
// newcomer into locking an unlinked inode while a third locks a new one.
func (s *socketFile) takeLock() error {
	lockPath := s.path + ".lock"
	var st unix.Stat_t
	err := unix.Fstatat(s.dir, s.lockName(), &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
	case err != nil:
		return fmt.Errorf("%s: %w", lockPath, err)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("%s: is %s, not a lock file: mainstay never removes it; remove it or choose another path", lockPath, what(st.Mode))
	}
	fd, err := unix.Openat(s.dir, s.lockName(), unix.O_RDONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", lockPath, err)
	}
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return fmt.Errorf("%s: not a regular file", lockPath)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%s: %w (%s is locked)", s.path, ErrInUse, lockPath)
		}
		return fmt.Errorf("%s: %w", lockPath, err)
	}
	s.lock = fd
	return nil
}

// removeStale removes a socket file at path: with the lock taken, no
// mainstay serves it. Anything else there is refused and left alone.
func (s *socketFile) removeStale() error {
	var st unix.Stat_t
	err := unix.Fstatat(s.dir, s.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", s.path, err)
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return fmt.Errorf("%s: is %s: mainstay replaces nothing there but a stale socket: remove it or choose another path", s.path, what(st.Mode))
	}
	if err := unix.Unlinkat(s.dir, s.name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s: cannot remove the stale socket: %w", s.path, err)
	}
	return nil
}

// listen binds the socket in the held directory, opens it to every uid
// (0666: access is decided per request by the peer's credentials), and
// records its inode, so that close removes this socket and no other.
func (s *socketFile) listen() (*net.UnixListener, error) {
	addr := s.inDir(s.name)
	if len(addr) > maxSunPath {
		return nil, fmt.Errorf("%s: name too long for a unix socket", s.path)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		var se *os.SyscallError
		if errors.As(err, &se) {
			err = se.Err
		}
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	l.SetUnlinkOnClose(false) // close unlinks by inode, below
	// chmod has no *at form that leaves a symlink alone: open the file
	// itself (O_PATH|O_NOFOLLOW), check it is a socket, chmod through the
	// descriptor.
	fd, err := unix.Openat(s.dir, s.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		switch {
		case err != nil:
		case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
			err = errors.New("replaced while being set up")
		default:
			s.dev, s.ino = st.Dev, st.Ino
			err = unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), 0o666)
		}
		unix.Close(fd)
	}
	if err != nil {
		l.Close()
		s.removeOwn()
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	return l, nil
}

// removeOwn unlinks the socket file if it is still the one bound.
func (s *socketFile) removeOwn() {
	var st unix.Stat_t
	if unix.Fstatat(s.dir, s.name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		st.Mode&unix.S_IFMT == unix.S_IFSOCK && st.Dev == s.dev && st.Ino == s.ino {
		unix.Unlinkat(s.dir, s.name, 0)
	}
}

// close removes the socket file (if it was bound and is still the one
// bound), then releases the lock: once the lock is free, no socket of
// ours is left for a newcomer to find.
func (s *socketFile) close() {
	if s.ino != 0 {
		s.removeOwn()
	}
	if s.lock >= 0 {
		unix.Close(s.lock)
		s.lock = -1
	}
	if s.dir >= 0 {
		unix.Close(s.dir)
		s.dir = -1
	}
}
