package readiness

import (
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"nothing written", nil, ""},
		{"one line", []string{"hello\n"}, "hello"},
		{"last of several", []string{"a\nb\n", "c\n"}, "c"},
		{"line split across writes", []string{"first\nsec", "ond line"}, "second line"},
		{"trailing blank lines skipped", []string{"error: boom\n\n  \n"}, "error: boom"},
		{"blanks trimmed", []string{"  padded \t\n"}, "padded"},
		{"crlf", []string{"x\r\ny\r\n"}, "y"},
		{"only the tail is kept", []string{strings.Repeat("x", 3*tailSize), "\nend\n"}, "end"},
		{"long last line is cut to the tail", []string{"start\n" + strings.Repeat("y", 2*tailSize)}, strings.Repeat("y", tailSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tl tail
			for _, w := range tt.writes {
				n, err := tl.Write([]byte(w))
				if n != len(w) || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", len(w), n, err)
				}
			}
			if got := tl.lastLine(); got != tt.want {
				t.Errorf("lastLine() = %q, want %q", got, tt.want)
			}
			if len(tl.buf) > tailSize {
				t.Errorf("kept %d bytes, want at most %d", len(tl.buf), tailSize)
			}
		})
	}
}
