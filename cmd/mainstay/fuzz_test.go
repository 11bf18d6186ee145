package main

import (
	"strconv"
	"strings"

	"testing"
	"unicode/utf8"

	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/readiness"
)

// FuzzSplitCommand: the word splitter behind --main, --helper and exec:
// probes never panics, its errors are one line, it never returns an empty
// command, and words quoted back for sh split into the same words. The
// seeds run as ordinary tests; `go test -fuzz FuzzSplitCommand` explores.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{
		"pg_isready -q -h 127.0.0.1",
		`sh -c 'echo "x y", z'`,
		`printf a\ b`,
		`echo "unbalanced`,
		"a && b", "a; b", "a | b", "a > b", "(a)", "`a`", "$(a)", "$HOME",
		"", "   ", "\t\n", `\`, `''`, `""`, `"\""`, `'\''`, "a\\\nb",
		"migrate -path /migrations up", "é 'ü ö'", "\x00", "\xff\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := readiness.SplitCommand(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if len(words) == 0 {
			t.Fatalf("SplitCommand(%q) = no words, no error", s)
		}
		if !utf8.ValidString(s) {
			return // quoting back below assumes text
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		again, err := readiness.SplitCommand(strings.Join(quoted, " "))
		if err != nil {
			t.Fatalf("SplitCommand(%q) = %q, which quoted back fails: %v", s, words, err)
		}
		if strings.Join(again, "\x00") != strings.Join(words, "\x00") || len(again) != len(words) {
			t.Fatalf("SplitCommand(%q) = %q; quoted back it splits into %q", s, words, again)
		}
	})
}

// FuzzParseSignal: --stop-signal's parser never panics, accepts only
// signals 1 to 64, answers with a one-line error otherwise, and reads back
// the number and the name of every signal it accepts.
func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{
		"TERM", "SIGTERM", "sigint", "quit", "2", "15", "64", "65", "0", "-1",
		"+15", "015", "0x0f", " 15", "SIG", "", "SIGRTMIN", "RTMIN+1", "SIGFOO",
		"99999999999999999999", "ＴＥＲＭ", "ſigterm",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := mainproc.ParseSignal(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if sig < 1 || sig > 64 {
			t.Fatalf("ParseSignal(%q) = %d, outside 1..64", s, sig)
		}
		if n, err := mainproc.ParseSignal(strconv.Itoa(int(sig))); err != nil || n != sig {
			t.Fatalf("ParseSignal(%q) = %d, but its number reads as %d, %v", s, sig, n, err)
		}
		if name := mainproc.SignalName(sig); name != strconv.Itoa(int(sig)) {
			if n, err := mainproc.ParseSignal(name); err != nil || n != sig {
				t.Fatalf("ParseSignal(%q) = %d, but its name %s reads as %d, %v", s, sig, name, n, err)
			}
		}

	})
}
