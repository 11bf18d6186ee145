package reaper

import (
	"bytes"
	"io"
)

const (
	// maxLine bounds how much of an unfinished line is held back waiting
	// for its newline: a line longer than 64 KiB is written out in pieces
	// of 64 KiB, each ended by a newline that mainstay adds, so that a
	// child that never ends its line cannot make mainstay buffer without
	// limit.
	maxLine = 64 << 10

	// batchSize is PIPE_BUF: a write of at most that many bytes to a pipe
	// is atomic, so the prefixed lines of one batch never interleave with
	// another writer's (mainstay's log lines, another child's output) in
	// the pipe that mainstay's stdout or stderr often is.
	batchSize = 4096
)

// prefixer writes each line of a child's output to w after prefix. One
// serves one stream of one run of a child, from the one goroutine that
// copies it, so it needs no lock, and a run's unfinished last line is
// never glued to the next run's first.
//
// The complete lines of what one read of the pipe returned are written
// together, in writes of at most batchSize bytes of whole prefixed lines;
// a prefixed line longer than that goes alone in a write of its own. A
// batch is never held back to be filled by a later read. Errors of w are
// dropped: the child must never be held up by mainstay's own output
// going nowhere.
type prefixer struct {
	w      io.Writer
	prefix []byte
	line   []byte // the unfinished line, without prefix
	batch  []byte // whole prefixed lines not written yet, at most batchSize bytes
	long   []byte // scratch for a prefixed line longer than batchSize
}

func newPrefixer(w io.Writer, prefix string) *prefixer {
	return &prefixer{w: w, prefix: []byte(prefix), batch: make([]byte, 0, batchSize)}
}

// write prefixes the complete lines of b, the first of them completing
// the unfinished line held from earlier, and writes them out; what
// follows b's last newline is held back until its newline comes (or
// maxLine bytes of it have), or until flush.
func (p *prefixer) write(b []byte) {
	for len(b) > 0 {
		if len(p.line) == 0 {
			b = p.lines(b)
			if len(b) == 0 {
				break
			}
		}
		i := bytes.IndexByte(b, '\n')
		n := i // the line's length without its newline
		if i < 0 {
			n = len(b)
		}
		if held := len(p.line); held+n > maxLine {
			k := maxLine - held
			p.emit(p.line, b[:k], true)
			p.line = p.line[:0]
			b = b[k:]
			continue
		}
		if i < 0 {
			p.line = append(p.line, b...)
			break
		}
		p.emit(p.line, b[:i+1], false)
		p.line = p.line[:0]
		b = b[i+1:]
	}
	p.send()
}

// lines is write's fast path, taken while no unfinished line is held: it
// copies the complete lines at the start of b that fit in a batch, each
// after the prefix, into the batch, writing it out whenever the next line
// would not fit, and returns the rest of b: from its first line that is
// unfinished, or too long for a batch.
func (p *prefixer) lines(b []byte) []byte {
	batch := p.batch[:batchSize]
	pos := len(p.batch)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		n := len(p.prefix) + i + 1
		if i < 0 || n > batchSize {
			break
		}
		if pos+n > batchSize {
			p.w.Write(batch[:pos])
			pos = 0
		}
		pos += copy(batch[pos:], p.prefix)
		pos += copy(batch[pos:], b[:i+1])
		b = b[i+1:]
	}
	p.batch = batch[:pos]
	return b
}

// flush writes out the unfinished line, ended by a newline, and whatever
// is batched.
func (p *prefixer) flush() {
	if len(p.line) > 0 {
		p.emit(p.line, nil, true)
		p.line = p.line[:0]
	}
	p.send()
}

// emit adds prefix+head+tail (+ a newline when nl is set) to the batch,
// writing the batch first when the line would not fit in it, and writing
// the line alone when it would not fit even in an empty one.
func (p *prefixer) emit(head, tail []byte, nl bool) {
	n := len(p.prefix) + len(head) + len(tail)
	if nl {
		n++
	}
	if len(p.batch)+n > batchSize {
		p.send()
	}
	out := p.batch
	if n > batchSize {
		out = p.long[:0]
	}
	out = append(out, p.prefix...)
	out = append(out, head...)
	out = append(out, tail...)
	if nl {
		out = append(out, '\n')
	}
	if n > batchSize {
		p.w.Write(out)
		p.long = out[:0]
		return
	}
	p.batch = out
}

// send writes the batch, if any.
func (p *prefixer) send() {
	if len(p.batch) > 0 {
		p.w.Write(p.batch)
		p.batch = p.batch[:0]
	}
}
