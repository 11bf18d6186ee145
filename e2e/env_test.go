//go:build e2e

package e2e

import (
	"path/filepath"
	"slices"
	"testing"
)

// argvScript writes argv.sh: it writes its arguments but the first, one a
// line, to the file argv.<first argument>.
func argvScript(t *testing.T, dir string) string {
	t.Helper()
	return script(t, dir, "argv.sh", `out="$D/argv.$1"
shift
for a in "$@"; do printf '%s\n' "$a"; done > "$out"
`)
}

// TestEnvHelpers: MAINSTAY_HELPER holds one command a line; commas, quotes
// and spaces reach the helpers intact, and they run in order.
func TestEnvHelpers(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		a := argvScript(t, dir)
		order := script(t, dir, "order.sh", `echo "$1" >> "$D/order"`+"\n")
		env := "MAINSTAY_HELPER=" +
			"sh " + a + ` h1 'a, b' "c 'd'" x,y` + "\n" +
			"sh " + order + " first\n" +
			"sh " + a + ` h2 "two  spaces" 'say "hi"' back\\slash` + "\n" +
			"sh " + order + " second"
		main := script(t, dir, "main.sh", `while [ ! -e "$D/go" ]; do sleep 0.05; done`+"\n")
		r := startWith(t, m, dir, config{env: []string{env}}, "--log-format", "json", "--", "sh", main)
		r.waitLog("main in the foreground")
		touch(t, filepath.Join(dir, "go"))
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
		for file, want := range map[string][]string{
			"argv.h1": {"a, b", "c 'd'", "x,y"},
			"argv.h2": {"two  spaces", `say "hi"`, `back\slash`},
			"order":   {"first", "second"},
		} {
			if got := lines(filepath.Join(dir, file)); !slices.Equal(got, want) {
				t.Errorf("%s: %q, want %q", file, got, want)
			}
		}
		if n := len(r.logsWith("helper succeeded")); n != 4 {
			t.Errorf("%d helpers succeeded, want 4", n)
		}
	})
}

// TestEnvReady: MAINSTAY_READY holds one probe a line, with commas, quotes
// and spaces intact.
func TestEnvReady(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		a := argvScript(t, dir)
		file := filepath.Join(dir, "ready, set go")
		touch(t, file)
		exec1 := "exec:sh " + a + ` p1 'a, b' "c 'd'"`
		exec2 := "exec:sh " + a + ` p2 x,y "two  spaces"`
		probes := []string{exec1, "file:" + file, exec2}
		env := "MAINSTAY_READY=" + probes[0] + "\n" + probes[1] + "\n" + probes[2]
		main := script(t, dir, "main.sh", `while [ ! -e "$D/go" ]; do sleep 0.05; done`+"\n")
		r := startWith(t, m, dir, config{env: []string{env}}, "--log-format", "json", "--", "sh", main)
		r.waitLog("main in the foreground")
		touch(t, filepath.Join(dir, "go"))
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
		for file, want := range map[string][]string{
			"argv.p1": {"a, b", "c 'd'"},
			"argv.p2": {"x,y", "two  spaces"},
		} {
			if got := lines(filepath.Join(dir, file)); !slices.Equal(got, want) {
				t.Errorf("%s: %q, want %q", file, got, want)
			}
		}
		var passed []string
		for _, l := range r.logsWith("probe passed") {
			passed = append(passed, l.str("probe"))
		}
		slices.Sort(passed)
		slices.Sort(probes)
		if !slices.Equal(passed, probes) {
			t.Errorf("probes passed: %q, want %q", passed, probes)
		}
		r.mustLog("ready")
	})
}

// TestMainAsString: --main (and MAINSTAY_MAIN) give main as one string,
// split like a shell would, with no shell run.
func TestMainAsString(t *testing.T) {
	for _, viaEnv := range []bool{false, true} {
		name := "flag"
		if viaEnv {
			name = "env"
		}
		t.Run(name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				out := filepath.Join(dir, "out")
				line := `sh -c 'printf "%s\n" "$0" "$1" > "$2"; exit 3' "a b" 'c, "d"' ` + out
				cfg := config{}
				args := []string{"--log-format", "json"}
				if viaEnv {
					cfg.env = []string{"MAINSTAY_MAIN=" + line}
				} else {
					args = append(args, "--main", line)
				}
				r := startWith(t, m, dir, cfg, args...)
				if got := r.wait(long); got != 3 {
					t.Errorf("exit code %d, want main's 3", got)
				}
				if got := lines(out); !slices.Equal(got, []string{"a b", `c, "d"`}) {
					t.Errorf("main's arguments %q, want [\"a b\" \"c, \\\"d\\\"\"]", got)
				}
			})
		})
	}
}

// TestEnvNotInherited: no MAINSTAY_* variable reaches main, a helper or an
// exec probe, so a mainstay that main runs does not run the outer one's
// helpers again; the rest of the environment does reach them.
func TestEnvNotInherited(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		dump := script(t, dir, "dump.sh", `env | grep '^MAINSTAY_' >> "$D/env.$1"
echo "${KEEP_ME-unset}" > "$D/keep.$1"
`)
		helper := script(t, dir, "helper.sh", `echo ran >> "$D/helper.runs"`+"\n")
		inner := script(t, dir, "inner.sh", `sh `+shQuote(dump)+` inner`+"\n")
		env := []string{
			"KEEP_ME=kept",
			"MAINSTAY_HELPER=sh " + dump + " helper\nsh " + helper,
			"MAINSTAY_READY=exec:sh " + dump + " probe",
			"MAINSTAY_GRACE=5s",
			"MAINSTAY_LOG_FORMAT=json",
		}
		// main dumps its environment, runs a mainstay of its own, then
		// waits for the outer helper so that start-up is not cut short.
		main := script(t, dir, "main.sh", `sh `+shQuote(dump)+` main
`+shQuote(bin)+` -- sh `+shQuote(inner)+` || exit 9
while [ ! -e "$D/helper.runs" ]; do sleep 0.05; done
`)
		r := startWith(t, m, dir, config{env: env}, "--", "sh", main)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want 0", got)
		}
		for _, who := range []string{"main", "helper", "probe", "inner"} {
			if got := lines(filepath.Join(dir, "env."+who)); len(got) != 0 {
				t.Errorf("%s got %q", who, got)
			}
			if got := lines(filepath.Join(dir, "keep."+who)); !slices.Equal(got, []string{"kept"}) {
				t.Errorf("%s: KEEP_ME=%q, want kept", who, got)
			}
		}
		if got := lines(filepath.Join(dir, "helper.runs")); len(got) != 1 {
			t.Errorf("the helper ran %d times, want once (a mainstay run by main must not run it again)", len(got))
		}
	})
}
