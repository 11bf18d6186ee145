package main

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// missingValueRE is kong's error for a flag given last, with no value.
var missingValueRE = regexp.MustCompile(`^(--[a-z0-9-]+): expected [a-z]+ value but got "EOL" \(<EOL>\)$`)

// leadingFlagRE is the flag that starts an error of kong's.
var leadingFlagRE = regexp.MustCompile(`^--[a-z0-9-]+`)

// usageError rewrites kong's parse error err into mainstay's: a flag with
// no value says so in words, and an error about a value that came from a
// variable names the variable (kong does for some types, not for enums).
func usageError(parser *kong.Kong, err error, source func(flag string) string) error {
	msg := err.Error()
	if m := missingValueRE.FindStringSubmatch(msg); m != nil {
		want := ""
		for _, f := range parser.Model.Flags {
			if "--"+f.Name == m[1] {
				want = fmt.Sprintf(": give it as %s %s or %s=%s", m[1], f.FormatPlaceHolder(), m[1], f.FormatPlaceHolder())
			}
		}
		return fmt.Errorf("%s: no value given%s", m[1], want)
	}
	if strings.Contains(msg, envPrefix+"_") {
		return err
	}
	if flag := leadingFlagRE.FindString(msg); flag != "" {
		if s := source(flag); s != flag {
			return fmt.Errorf("%s%s", s, strings.TrimPrefix(msg, flag))
		}
	}
	return err
}

// checkEnvironment refuses a MAINSTAY_* variable that no flag reads: a
// misspelt MAINSTAY_READY_TIMOUT would otherwise be ignored in silence.
// The nearest known name is suggested.
func checkEnvironment(known []string, environ []string) error {
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix+"_") || slices.Contains(known, name) {
			continue
		}
		hint := ""
		if near := nearest(name, known); near != "" {
			hint = "did you mean " + near + "? "
		}
		return fmt.Errorf("unknown environment variable %s: %smainstay reads only the MAINSTAY_* variables that --help lists", name, hint)
	}
	return nil
}

// nearest is the name in known closest to name by edit distance, or ""
// when none is close enough to be a typo of it (more than a third of the
// part after MAINSTAY_ differs).
func nearest(name string, known []string) string {
	best, bestDist := "", 0
	for _, k := range known {
		if d := editDistance(name, k); best == "" || d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" || bestDist*3 > len(name)-len(envPrefix)-1 {
		return ""
	}
	return best
}

// editDistance is the number of single-byte insertions, deletions,
// substitutions and swaps of two neighbours that turn a into b (the
// optimal string alignment distance): GRCAE is one from GRACE.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// dirProblem says what is wrong with dir as a directory, or "" when it is
// one: it does not exist, or it is not a directory.
func dirProblem(dir string) string {
	fi, err := os.Stat(dir)
	switch {
	case os.IsNotExist(err):
		return dir + " does not exist"
	case err != nil:
		return fmt.Sprintf("%s: %v", dir, err)
	case !fi.IsDir():
		return dir + " is not a directory"
	}
	return ""
}
