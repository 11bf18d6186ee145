package lifecycle

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	mainproc "github.com/mainstay-dev/mainstay/main"
	"golang.org/x/sys/unix"
)

// pidfileDaemon is how a pidfile= sidecar finds its daemon: the pidfile at
// path, removed before each start and read after it with the state
// files' care, as the directory it is in may belong to the daemon's user.
// Its directory is opened anew each time (the daemon may create it), its
// last component not through a symlink; the file itself is never
// followed through one, must be a regular file, and is read up to 64
// bytes. Then the reaper decides whether the PID is believed.
func pidfileDaemon(path string, uid int, timeout time.Duration) *mainproc.Daemon {
	dir, name := filepath.Dir(path), filepath.Base(path) // no trailing slash: it would follow a symlink
	open := func() (*fileDir, error) {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("directory %s: %w", dir, err)
		}
		return &fileDir{path: dir, fd: fd}, nil
	}
	return &mainproc.Daemon{
		Path: path,
		UID:  uid,
		Clear: func() error {
			d, err := open()
			if errors.Is(err, unix.ENOENT) {
				return nil // nothing to remove
			}
			if err != nil {
				return err
			}
			defer d.close()
			return d.remove(name)
		},
		Read: func() (int, error) {
			d, err := open()
			if err != nil {
				return 0, err
			}
			defer d.close()
			b, err := d.read(name, 64)
			if errors.Is(err, unix.ENOENT) {
				return 0, errors.New("not written yet")
			}
			if err != nil {
				return 0, fmt.Errorf("%s: %w", path, err)
			}
			s := strings.TrimSpace(string(b))
			pid, err := strconv.Atoi(s)
			if err != nil || pid <= 0 {
				if s == "" {
					return 0, errors.New("empty")
				}
				return 0, fmt.Errorf("does not hold a PID: %q", truncate(s, 20))
			}
			return pid, nil
		},
		Timeout: timeout,
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
