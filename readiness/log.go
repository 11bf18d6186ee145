package readiness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"

	"github.com/mainstay-dev/mainstay/reaper"
)

// maxLine bounds the part of a line of main's output that a log probe
// keeps for matching; the rest of a longer line is not matched.
const maxLine = 64 << 10

// Log passes once a line of main's output matches its regular expression.
// Main's stdout and stderr reach it through [Log.Stream] writers, which
// mainstay's copy of main's output feeds; a line matched before the wait
// began counts. Once matched, the writers do nothing.
type Log struct {
	spec string
	re   *regexp.Regexp

	once    sync.Once
	matched chan struct{} // closed on the first match
}

func parseLog(spec, expr string) (Probe, error) {
	if expr == "" {
		return nil, fmt.Errorf("probe %q: log: needs a regular expression", spec)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		// The error quotes the expression.
		return nil, fmt.Errorf("probe %q: %s", spec, Redact(err.Error()))
	}
	return &Log{spec: spec, re: re, matched: make(chan struct{})}, nil
}

func (p *Log) String() string { return p.spec }

var errNoMatch = errors.New("no line of main's output has matched yet")

// Check passes once a line has matched.
func (p *Log) Check(ctx context.Context, _ reaper.Runner) error {
	select {
	case <-p.matched:
		return nil
	default:
		return errNoMatch
	}
}

// wake fires once, on the match.
func (p *Log) wake(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		select {
		case <-p.matched:
			ch <- struct{}{}
		case <-ctx.Done():
		}
	}()
	return ch
}

// Stream returns a writer for one of main's output streams. Each stream
// needs its own, so partial lines of stdout and stderr do not mix. Writes
// never fail and never block on anything but the match itself.
func (p *Log) Stream() io.Writer { return &lineMatcher{p: p} }

type lineMatcher struct {
	p    *Log
	line []byte
	long bool // the current line outgrew maxLine
}

func (m *lineMatcher) Write(b []byte) (int, error) {
	n := len(b)
	select {
	case <-m.p.matched:
		return n, nil
	default:
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i]
		}
		if !m.long {
			if len(m.line)+len(chunk) > maxLine {
				chunk = chunk[:maxLine-len(m.line)]
				m.long = true
			}
			m.line = append(m.line, chunk...)
		}
		if i < 0 {
			break
		}
		if m.p.re.Match(bytes.TrimSuffix(m.line, []byte("\r"))) {
			m.p.once.Do(func() { close(m.p.matched) })
			m.line = nil
			return n, nil
		}
		m.line, m.long = m.line[:0], false
		b = b[i+1:]
	}
	return n, nil
}
