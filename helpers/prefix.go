package helpers

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// maxPrefixedLine bounds how much of an unfinished line is held back
// waiting for its newline; a longer line is written out in pieces.
const maxPrefixedLine = 64 << 10

// Prefixer writes each line written to it to w, after prefix. An
// unfinished line waits for its newline (up to maxPrefixedLine) or for
// Flush. It is safe for concurrent use. A failed write to w is dropped:
// the program whose output it is must never be held up by mainstay's own
// output going nowhere.
type Prefixer struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
	line   []byte
}

func (p *Prefixer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.line = append(p.line, b...)
			if len(p.line) >= maxPrefixedLine {
				p.emit(append(p.line, '\n'))
			}
			break
		}
		p.line = append(p.line, b[:i+1]...)
		p.emit(p.line)
		b = b[i+1:]
	}
	return n, nil
}

// emit writes prefix+line and empties the buffer. A failed write to
// mainstay's own output must not fail the helper, so errors are dropped.
func (p *Prefixer) emit(line []byte) {
	out := make([]byte, 0, len(p.prefix)+len(line))
	out = append(append(out, p.prefix...), line...)
	p.w.Write(out)
	p.line = p.line[:0]
}

// Flush writes an unfinished last line, ended by a newline.
func (p *Prefixer) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.line) > 0 {
		p.emit(append(p.line, '\n'))
	}
}

// NewPrefixer returns a Prefixer that writes to w; an empty prefix still
// buffers lines, so use w itself for none.
func NewPrefixer(w io.Writer, prefix string) *Prefixer {
	return &Prefixer{w: w, prefix: []byte(prefix)}
}

// ExpandPrefix fills the {helper} placeholder of a --helper-prefix template
// with a task's (or a sidecar's) short name.
func ExpandPrefix(template, name string) string {
	return strings.ReplaceAll(template, "{helper}", name)
}
