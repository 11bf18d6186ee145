package reaper

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// output is the copying of one run of a child's output to writers that are
// not files, or that get a prefix. os/exec would copy it with goroutines of
// its own, which only [exec.Cmd.Wait] joins; the reaper never calls that,
// so it makes the pipes itself.
//
// Each pipe is copied by a goroutine of its own until end of file, or until
// its read deadline: set when the child's exit is reaped (the child's
// OutputWait later), or by [Proc.CloseOutput]. Then a partial last line is
// flushed, whoever still holds the pipe is logged as left running, and the
// read ends are closed.
type output struct {
	log  *slog.Logger
	name string
	wait time.Duration // after the exit; KeepOutput: until CloseOutput

	child []*os.File // write ends, closed once the child has its own copies
	pipes []*pipe
	done  chan struct{} // closed once every pipe is closed and flushed

	mu       sync.Mutex
	deadline time.Time // the read deadline set so far, zero when none
}

// pipe is one output pipe of a run and its copy.
type pipe struct {
	r     *os.File
	ino   uint64 // the pipe's inode, as /proc/PID/fd links name it
	dst   io.Writer
	pre   *prefixer // nil: the bytes go out as they come
	ended bool      // at end of file: nobody holds the write end any more
}

// redirect gives cmd the Stdout and Stderr of s: files as they are (unless
// s has a prefix), other writers through pipes, returned in an output to
// start once cmd has started. The same writer for both gets one pipe, as
// with os/exec.
func redirect(cmd *exec.Cmd, s Spec, log *slog.Logger) (*output, error) {
	o := &output{log: log, name: s.Name, wait: s.OutputWait, done: make(chan struct{})}
	if o.wait == 0 {
		o.wait = DefaultOutputWait
	}
	if o.name == "" && len(s.Argv) > 0 {
		o.name = s.Argv[0]
	}
	same := s.Stdout != nil && interfaceEqual(s.Stdout, s.Stderr)
	for i, w := range []io.Writer{s.Stdout, s.Stderr} {
		fd := &cmd.Stdout
		if i == 1 {
			fd = &cmd.Stderr
		}
		if f, ok := w.(*os.File); w == nil || ok && f == nil {
			continue // /dev/null
		}
		if f, ok := w.(*os.File); ok && s.Prefix == "" {
			*fd = f
			continue
		}
		if i == 1 && same {
			cmd.Stderr = cmd.Stdout
			continue
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			o.abort()
			return nil, err
		}
		// A child may open its output again by name (/dev/stdout,
		// /proc/self/fd/1: catalina.sh's CATALINA_OUT, a log file
		// setting), and that open checks the pipe's inode as a file's:
		// pipe(2) makes it mainstay's, mode 0600. It holds the child's
		// own output only, so it is made the child's user's, as runc does
		// with a container's stdio pipes. Best effort: without it, only
		// such an open fails, as before.
		if c := s.Credential; c != nil {
			_ = pw.Chown(int(c.Uid), int(c.Gid))
		}
		p := &pipe{r: pr, dst: w}
		var st syscall.Stat_t
		if syscall.Fstat(int(pw.Fd()), &st) == nil {
			p.ino = st.Ino
		}
		if s.Prefix != "" {
			p.pre = newPrefixer(w, s.Prefix)
		}
		o.child, o.pipes = append(o.child, pw), append(o.pipes, p)
		*fd = pw
	}
	return o, nil
}

// interfaceEqual protects against panics from doing equality tests on
// two interfaces with non-comparable underlying types (os/exec's).
func interfaceEqual(a, b any) bool {
	defer func() { recover() }()
	return a == b
}

// start closes the parent's copies of the write ends, so the pipes reach
// end of file when the child and whatever inherited them exit, and starts
// the copies.
func (o *output) start() {
	o.closeChild()
	if len(o.pipes) == 0 {
		close(o.done)
		return
	}
	var wg sync.WaitGroup
	for _, p := range o.pipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.copy()
		}()
	}
	go func() {
		wg.Wait()
		o.finish()
	}()
}

func (o *output) closeChild() {
	for _, f := range o.child {
		f.Close()
	}
	o.child = nil
}

// abort undoes redirect after a failed start.
func (o *output) abort() {
	o.closeChild()
	for _, p := range o.pipes {
		p.r.Close()
	}
	close(o.done)
}

// copy copies the pipe until end of file or its read deadline, then
// flushes an unfinished last line. A write that fails (a closed stdout)
// drops the output but keeps the pipe drained, so the child never blocks
// on it.
func (p *pipe) copy() {
	buf := make([]byte, 64<<10) // a pipe's default capacity
	for {
		n, err := p.r.Read(buf)
		p.out(buf[:n])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			p.ended = p.drain(buf)
			break
		}
		if err != nil {
			p.ended = err == io.EOF
			break
		}
	}
	if p.pre != nil {
		p.pre.flush()
	}
}

// out passes b on, through the prefixer when there is one.
func (p *pipe) out(b []byte) {
	switch {
	case len(b) == 0:
	case p.pre != nil:
		p.pre.write(b)
	default:
		p.dst.Write(b)
	}
}

// drain copies what is already in the pipe when the copy's deadline has
// passed (the poller fails a read at once then, buffered bytes or not),
// without waiting for more, and at most a pipe's capacity a few times
// over, so that a holder writing on and on cannot keep it going; it
// reports whether it reached end of file.
func (p *pipe) drain(buf []byte) (eof bool) {
	rc, err := p.r.SyscallConn()
	if err != nil {
		return false
	}
	rc.Read(func(fd uintptr) bool {
		for range 16 {
			n, err := unix.Read(int(fd), buf)
			if n > 0 {
				p.out(buf[:n])
				continue
			}
			eof = n == 0 && err == nil
			return true // never wait: EAGAIN, an error or end of file ends it
		}
		return true
	})
	return eof
}

// exited starts the bound on the copies once the child's exit is reaped,
// unless they are kept open.
func (o *output) exited() {
	if o.wait != KeepOutput {
		o.closeBy(time.Now().Add(o.wait))
	}
}

// closeBy makes the copies end by t at the latest: a read still waiting
// then fails, and the copy ends.
func (o *output) closeBy(t time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.deadline.IsZero() && !t.Before(o.deadline) {
		return
	}
	o.deadline = t
	for _, p := range o.pipes {
		// An error means the copy has ended and closed the pipe already.
		_ = p.r.SetReadDeadline(t)
	}
}

// finish runs once every copy has ended: it names the processes that still
// hold a pipe the copy gave up on, then closes the read ends.
func (o *output) finish() {
	inodes := map[uint64]bool{}
	for _, p := range o.pipes {
		if !p.ended && p.ino != 0 {
			inodes[p.ino] = true
		}
	}
	if len(inodes) > 0 {
		for _, h := range pipeHolders(inodes) {
			o.log.Info("left running by "+o.name, "pid", h.pid, "command", h.command)
		}
	}
	for _, p := range o.pipes {
		p.r.Close()
	}
	close(o.done)
}

// holder is a process that holds one of a child's output pipes.
type holder struct {
	pid     int
	command string
}

// pipeHolders lists the program's descendants that have a pipe with one of
// inodes open, from their /proc/PID/fd links ("pipe:[INODE]"); each is
// listed once, in PID order. As PID 1 or a subreaper, every process that
// outlived the child it descends from is a descendant of the program.
func pipeHolders(inodes map[uint64]bool) []holder {
	var out []holder
	procs, _ := liveDescendants() // none listed: nobody named
	for _, proc := range procs {
		pid := proc.PID
		dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			link, err := os.Readlink(dir + e.Name())
			if err != nil {
				continue
			}
			s, ok := strings.CutPrefix(link, "pipe:[")
			if !ok {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
			if err == nil && inodes[ino] {
				out = append(out, holder{pid: pid, command: proc.Command()})
				break
			}
		}
	}
	return out
}

// errNoArgv is Start's error for a Spec without a program.
var errNoArgv = errors.New("internal error: reaper: a Spec without Argv")
