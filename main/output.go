package mainproc

import (
	"io"
	"os"
	"sync"
	"time"
)

// output copies one of main's output streams to mainstay's own and to an
// observer (a log probe). The pipe is mainstay's, not os/exec's: the copy
// outlives main, carrying what its children write until the last of them
// is gone, and never depends on main's Wait.
type output struct {
	done chan struct{}
}

// pipeOutput returns the write end to give main, and starts copying the
// read end to dst and obs. The caller closes the write end once main
// started.
func pipeOutput(dst, obs io.Writer) (*os.File, *output, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	o := &output{done: make(chan struct{})}
	go func() {
		defer close(o.done)
		defer r.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				// Bytes go out as they come, partial lines included;
				// a failed write must not stop main's output draining.
				dst.Write(buf[:n])
				obs.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	return w, o, nil
}

// flushOutputs waits, up to d, until every process holding main's output
// pipes has closed them and everything has been copied.
func flushOutputs(outs []*output, d time.Duration) {
	timeout := time.After(d)
	var wg sync.WaitGroup
	for _, o := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-o.done:
			case <-timeout:
			}
		}()
	}
	wg.Wait()
}
