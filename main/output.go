package mainproc

import "io"

// tee is where one of main's output streams goes when a log probe observes
// it: mainstay's own stream and the observer, byte for byte, partial lines
// included. The reaper copies main's pipe into it; a failed write to one
// must not keep the other from its copy, nor stop main's output draining.
type tee struct {
	dst, obs io.Writer
}

func (t tee) Write(b []byte) (int, error) {
	t.dst.Write(b)
	t.obs.Write(b)
	return len(b), nil
}
