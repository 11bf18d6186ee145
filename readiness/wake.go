package readiness

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// waker is a probe that can tell when a new attempt is worth making before
// its backoff delay ends. The returned channel receives after each such
// event, and nothing once ctx is done; nil means no events (poll only).
type waker interface {
	wake(ctx context.Context) <-chan struct{}
}

// wake watches the file's directory with inotify, so the file is noticed
// as soon as it is created, renamed into place or touched, not at the next
// poll. Polling goes on regardless: it is the fallback where inotify sees
// nothing (network filesystems, a directory that does not exist yet).
func (p File) wake(ctx context.Context) <-chan struct{} {
	return watchDir(ctx, filepath.Dir(p.Path))
}

// wake watches the socket's directory the same way: bind(2) creates the
// socket file, and the server's listen(2) follows at once, so the attempt
// this wakes almost always passes (the next poll catches the rare one that
// comes in between). An abstract socket (@name) has no file: poll only.
func (p Unix) wake(ctx context.Context) <-chan struct{} {
	if strings.HasPrefix(p.Path, "@") {
		return nil
	}
	return watchDir(ctx, filepath.Dir(p.Path))
}

// watchDir returns a channel that receives after each inotify event in
// dir, or nil when dir cannot be watched.
func watchDir(ctx context.Context, dir string) <-chan struct{} {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	const events = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_MODIFY
	if _, err := unix.InotifyAddWatch(fd, dir, events); err != nil {
		unix.Close(fd)
		return nil
	}
	// A non-blocking descriptor joins Go's poller, so Close unblocks Read.
	f := os.NewFile(uintptr(fd), "inotify")
	ch := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default: // one pending wake-up is enough
			}
		}
	}()
	return ch
}

// wakeTimer is the backoff.Timer of a probe with wake-ups: it fires when
// the backoff delay ends or when the probe reports an event, whichever
// comes first.
type wakeTimer struct {
	timer *time.Timer
	c     chan time.Time
}

func newWakeTimer(ctx context.Context, wake <-chan struct{}) *wakeTimer {
	t := &wakeTimer{timer: time.NewTimer(time.Hour), c: make(chan time.Time, 1)}
	t.timer.Stop()
	go func() {
		for {
			var now time.Time
			select {
			case now = <-t.timer.C:
			case <-wake:
				now = time.Now()
			case <-ctx.Done():
				t.timer.Stop()
				return
			}
			select {
			case t.c <- now:
			default:
			}
		}
	}()
	return t
}

func (t *wakeTimer) Start(d time.Duration) { t.timer.Reset(d) }
func (t *wakeTimer) Stop()                 { t.timer.Stop() }
func (t *wakeTimer) C() <-chan time.Time   { return t.c }
