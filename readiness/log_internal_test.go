package readiness

import (
	"bytes"
	"context"
	"testing"
)

// TestLogLineCap: a line that never ends holds at most maxLine bytes, and
// the line after it is matched as usual.
func TestLogLineCap(t *testing.T) {
	p, err := parseLog("log:^ready$", "^ready$")
	if err != nil {
		t.Fatal(err)
	}
	lp := p.(*Log)
	m := lp.Stream().(*lineMatcher)
	chunk := bytes.Repeat([]byte("x"), 4096)
	for i := 0; i < 1024; i++ { // 4 MiB without a newline
		m.Write(chunk)
		if len(m.line) > maxLine {
			t.Fatalf("after %d bytes the matcher holds %d, more than %d", (i+1)*len(chunk), len(m.line), maxLine)
		}
	}
	if lp.Check(context.Background(), nil) == nil {
		t.Fatal("matched inside an overlong line")
	}
	m.Write([]byte("\nready\n"))
	if err := lp.Check(context.Background(), nil); err != nil {
		t.Fatalf("line after an overlong one: %v", err)
	}
	// Once matched, writes are not even scanned.
	m.Write(chunk)
	if len(m.line) != 0 {
		t.Errorf("matcher kept %d bytes after the match", len(m.line))
	}
}
