package reaper

import (
	"io"
	"os"
	"os/exec"
	"time"
)

// copies carries a child's output to writers that are not files. os/exec
// would copy it with goroutines of its own, which only [exec.Cmd.Wait]
// joins; the reaper never calls that, so it makes the pipes itself.
type copies struct {
	child []*os.File // write ends, closed once the child has its own copies
	read  []*os.File
	done  []chan struct{}
}

// redirect replaces cmd.Stdout and cmd.Stderr when they are writers but not
// files by the write ends of pipes, and returns the copies to start. The
// same writer for both gets one pipe, as with os/exec.
func redirect(cmd *exec.Cmd) (*copies, error) {
	c := &copies{}
	// Compared before the loop replaces cmd.Stdout by its pipe.
	same := cmd.Stderr == cmd.Stdout
	var shared *os.File
	for i, w := range []*io.Writer{&cmd.Stdout, &cmd.Stderr} {
		if *w == nil {
			continue
		}
		if _, ok := (*w).(*os.File); ok {
			continue
		}
		if i == 1 && same && shared != nil {
			*w = shared
			continue
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			c.abort()
			return nil, err
		}
		dst := *w
		done := make(chan struct{})
		c.child, c.read, c.done = append(c.child, pw), append(c.read, pr), append(c.done, done)
		go func() {
			defer close(done)
			// A write that fails (a closed stdout) drops the output but
			// keeps the pipe drained, so the child never blocks on it.
			buf := make([]byte, 32<<10)
			for {
				n, err := pr.Read(buf)
				if n > 0 {
					dst.Write(buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
		*w = pw
		if i == 0 {
			shared = pw
		}
	}
	return c, nil
}

// started closes the parent's copies of the write ends: from now on the
// pipes reach end of file when the child and whatever inherited them exit.
func (c *copies) started() {
	for _, f := range c.child {
		f.Close()
	}
	c.child = nil
}

// abort undoes redirect after a failed start.
func (c *copies) abort() {
	c.started()
	for _, f := range c.read {
		f.Close()
	}
}

var closed = func() chan time.Time { c := make(chan time.Time); close(c); return c }()

// wait waits for the copies to reach end of file, at most delay when delay
// is positive: a background process the child left holding the pipe must
// not hold its owner up. The pipes are closed then.
func (c *copies) wait(delay time.Duration) {
	var timeout <-chan time.Time
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		timeout = t.C
	}
	for i, done := range c.done {
		select {
		case <-done:
		case <-timeout:
			timeout = closed // the others are not waited for either
		}
		c.read[i].Close() // ends the copy if it was still reading
	}
}
