package reaper

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// writes records every Write call made to it, as its own copy.
type writes struct {
	mu    sync.Mutex
	calls [][]byte
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, bytes.Clone(p))
	return len(p), nil
}

func (w *writes) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(bytes.Join(w.calls, nil))
}

func (w *writes) sizes() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for _, c := range w.calls {
		out = append(out, len(c))
	}
	return out
}

// checkBatches fails unless every write holds whole prefixed lines and at
// most batchSize bytes, or a single prefixed line longer than that.
func checkBatches(t *testing.T, w *writes, prefix string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, c := range w.calls {
		if !bytes.HasPrefix(c, []byte(prefix)) || !bytes.HasSuffix(c, []byte("\n")) {
			t.Errorf("write %d (%d bytes) does not hold whole prefixed lines: %.40q...", i, len(c), c)
		}
		if n := bytes.Count(c, []byte("\n")); len(c) > batchSize && n != 1 {
			t.Errorf("write %d: %d bytes, over PIPE_BUF, with %d lines; a line that long goes alone", i, len(c), n)
		}
	}
}

// TestPrefixerBatches: the complete lines of one read go out in as few
// writes as PIPE_BUF allows, each of whole prefixed lines, and none is
// held back once write returns: only the unfinished line waits.
func TestPrefixerBatches(t *testing.T) {
	var w writes
	p := newPrefixer(&w, "[p] ")
	in := strings.Repeat("y\n", 5000) + "unfin"
	p.write([]byte(in))
	want := strings.Repeat("[p] y\n", 5000)
	if got := w.all(); got != want {
		t.Fatalf("after write: %d bytes out, want the %d of the 5000 complete lines", len(got), len(want))
	}
	// 6 bytes a line: 682 lines (4092 bytes) fit in a batch.
	perBatch := batchSize / len("[p] y\n")
	wantWrites := (5000 + perBatch - 1) / perBatch
	if sizes := w.sizes(); len(sizes) != wantWrites {
		t.Errorf("%d writes (the first of %d bytes), want %d of at most %d bytes", len(sizes), sizes[0], wantWrites, batchSize)
	}
	checkBatches(t, &w, "[p] ")
	p.write([]byte("ished\nlast"))
	p.flush()
	if got := w.all(); got != want+"[p] unfinished\n[p] last\n" {
		t.Errorf("the unfinished lines came out as %q", strings.TrimPrefix(got, want))
	}
}

// TestPrefixerLongLines: a prefixed line longer than PIPE_BUF goes alone,
// after the batch before it; a line longer than maxLine is split, a
// newline added, whether its newline comes in the same read or never.
func TestPrefixerLongLines(t *testing.T) {
	var w writes
	p := newPrefixer(&w, "> ")
	long := strings.Repeat("x", 5000)
	p.write([]byte("a\nb\n" + long + "\nc\n"))
	want := []string{"> a\n> b\n", "> " + long + "\n", "> c\n"}
	if got := w.calls; len(got) != len(want) || string(got[0]) != want[0] || string(got[1]) != want[1] || string(got[2]) != want[2] {
		t.Errorf("writes %v, want sizes [8 5003 4]", w.sizes())
	}

	for _, tc := range []struct {
		name   string
		chunks []string
	}{
		{"one read", []string{strings.Repeat("z", maxLine+10) + "\n"}},
		{"many reads", []string{strings.Repeat("z", maxLine-1), "zz", strings.Repeat("z", 9) + "\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w writes
			p := newPrefixer(&w, "> ")
			for _, c := range tc.chunks {
				p.write([]byte(c))
			}
			p.flush()
			want := "> " + strings.Repeat("z", maxLine) + "\n> " + strings.Repeat("z", 10) + "\n"
			if got := w.all(); got != want {
				t.Errorf("got %d bytes in lines of %v, want a %d-byte piece then 10 bytes", len(got), lineLengths(got), maxLine)
			}
			checkBatches(t, &w, "> ")
		})
	}

	var never writes
	p = newPrefixer(&never, "> ")
	p.write([]byte(strings.Repeat("n", 3*maxLine)))
	if got := never.all(); got != strings.Repeat("> "+strings.Repeat("n", maxLine)+"\n", 2) {
		t.Errorf("a line that never ends: %v written before flush, want two pieces of %d", lineLengths(got), maxLine)
	}
}

func lineLengths(s string) []int {
	var out []int
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			out = append(out, len(l))
		}
	}
	return out
}

// TestPrefixerFlush: the unfinished last line is written, prefixed and
// ended by a newline; nothing is written when there is none.
func TestPrefixerFlush(t *testing.T) {
	var w writes
	p := newPrefixer(&w, "[s] ")
	p.write([]byte("done\n"))
	p.flush()
	if got := w.all(); got != "[s] done\n" {
		t.Errorf("got %q", got)
	}
	p.write([]byte("partial"))
	if got := w.all(); got != "[s] done\n" {
		t.Errorf("the unfinished line was written before flush: %q", got)
	}
	p.flush()
	if got := w.all(); got != "[s] done\n[s] partial\n" {
		t.Errorf("got %q", got)
	}
}
