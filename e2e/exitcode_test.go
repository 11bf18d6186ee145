//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMainExitCode: main exits with N (or is killed by signal N) in the
// foreground phase → mainstay exits N (128+N).
func TestMainExitCode(t *testing.T) {
	cases := []struct {
		name, body string
		want       int
	}{
		{"exit0", "exit 0", 0},
		{"exit3", "exit 3", 3},
		{"killed-by-SIGKILL", "kill -KILL $$", 137},
		{"killed-by-SIGTERM", "kill -TERM $$", 143},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				main := script(t, dir, "main.sh", "echo ran > \"$D/ran\"\n"+c.body+"\n")
				r := start(t, m, dir, "--log-format", "json", "--", "sh", main)
				if got := r.wait(long); got != c.want {
					t.Errorf("exit code %d, want %d", got, c.want)
				}
				if !exists(filepath.Join(dir, "ran")) {
					t.Error("main did not run")
				}
				if l := r.mustLog("main exited"); l != nil && l.num("exit_code") != c.want {
					t.Errorf("logged %v, want exit_code %d", l, c.want)
				}
			})
		})
	}
}

// TestBadUsage: bad flags, environment variables or probe specs → exit 2,
// one line on stderr naming the flag (or variable) and the bad value, and
// main never started.
func TestBadUsage(t *testing.T) {
	cases := []struct {
		name  string
		args  []string // before "--" MAIN
		env   []string
		names []string // the line names one of these: the flag or the variable
		value string   // and this value
	}{
		{"ready-timeout", []string{"--ready-timeout", "banana"}, nil, []string{"--ready-timeout"}, "banana"},
		{"grace-negative", []string{"--grace=-1s"}, nil, []string{"--grace"}, "-1s"},
		{"ready-interval-zero", []string{"--ready-interval", "0s"}, nil, []string{"--ready-interval"}, "0s"},
		{"interval-above-max", []string{"--ready-interval", "2s", "--ready-max-interval", "1s"}, nil, []string{"--ready-interval"}, "2s"},
		{"stop-signal", []string{"--stop-signal", "SIGFOO"}, nil, []string{"--stop-signal"}, "SIGFOO"},
		{"stop-signal-number", []string{"--stop-signal", "99"}, nil, []string{"--stop-signal"}, "99"},
		{"on-helper-failure", []string{"--on-helper-failure", "maybe"}, nil, []string{"--on-helper-failure"}, "maybe"},
		{"log-format", []string{"--log-format", "xml"}, nil, []string{"--log-format"}, "xml"},
		{"unknown-flag", []string{"--no-such-flag"}, nil, []string{"--no-such-flag"}, "--no-such-flag"},
		{"probe-kind", []string{"--ready", "bogus:1"}, nil, []string{"--ready"}, "bogus:1"},
		{"probe-no-kind", []string{"--ready", "localhost"}, nil, []string{"--ready"}, "localhost"},
		{"probe-port", []string{"--ready", "tcp:99999"}, nil, []string{"--ready"}, "tcp:99999"},
		{"probe-exec-quote", []string{"--ready", "exec:sh -c 'true"}, nil, []string{"--ready"}, "exec:sh -c 'true"},
		{"probe-file-empty", []string{"--ready", "file:"}, nil, []string{"--ready"}, "file:"},
		{"helper-quote", []string{"--helper", "sh -c 'true"}, nil, []string{"--helper"}, "sh -c 'true"},
		{"helper-operator", []string{"--helper", "migrate up; rm -rf /x"}, nil, []string{"--helper"}, "migrate up; rm -rf /x"},
		{"env-ready-timeout", nil, []string{"MAINSTAY_READY_TIMEOUT=banana"}, []string{"MAINSTAY_READY_TIMEOUT", "--ready-timeout"}, "banana"},
		{"env-grace", nil, []string{"MAINSTAY_GRACE=-3s"}, []string{"MAINSTAY_GRACE", "--grace"}, "-3s"},
		{"env-stop-signal", nil, []string{"MAINSTAY_STOP_SIGNAL=NOPE"}, []string{"MAINSTAY_STOP_SIGNAL", "--stop-signal"}, "NOPE"},
		{"env-on-helper-failure", nil, []string{"MAINSTAY_ON_HELPER_FAILURE=maybe"}, []string{"MAINSTAY_ON_HELPER_FAILURE", "--on-helper-failure"}, "maybe"},
		{"env-signal-group", nil, []string{"MAINSTAY_SIGNAL_GROUP=perhaps"}, []string{"MAINSTAY_SIGNAL_GROUP", "--signal-group"}, "perhaps"},
		{"env-ready-second-line", nil, []string{"MAINSTAY_READY=tcp:1\nbogus"}, []string{"MAINSTAY_READY", "--ready"}, "bogus"},
		{"env-helper", nil, []string{"MAINSTAY_HELPER=sh -c 'true"}, []string{"MAINSTAY_HELPER", "--helper"}, "sh -c 'true"},
		{"env-misspelt", nil, []string{"MAINSTAY_READY_TIMOUT=5s"}, []string{"MAINSTAY_READY_TIMOUT"}, "MAINSTAY_READY_TIMOUT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				marker := filepath.Join(dir, "started")
				args := append([]string{"--log-format", "json"}, c.args...)
				args = append(args, "--", "touch", marker)
				r := startWith(t, m, dir, config{env: c.env}, args...)
				if got := r.wait(long); got != 2 {
					t.Errorf("exit code %d, want 2", got)
				}
				if exists(marker) {
					t.Error("main was started")
				}
				checkUsageLine(t, r.stderr(), c.names, c.value)
			})
		})
	}

	// Main given twice, or not at all: nothing to name but the flag.
	t.Run("main-twice", func(t *testing.T) {
		eachMode(t, func(t *testing.T, m mode) {
			dir := t.TempDir()
			marker := filepath.Join(dir, "started")
			r := start(t, m, dir, "--main", "touch "+marker, "--", "touch", marker)
			if got := r.wait(long); got != 2 {
				t.Errorf("exit code %d, want 2", got)
			}
			if exists(marker) {
				t.Error("main was started")
			}
			checkUsageLine(t, r.stderr(), []string{"--main"}, "touch "+marker)
		})
	})
	t.Run("no-main", func(t *testing.T) {
		eachMode(t, func(t *testing.T, m mode) {
			r := start(t, m, t.TempDir(), "--log-format", "json")
			if got := r.wait(long); got != 2 {
				t.Errorf("exit code %d, want 2", got)
			}
			checkUsageLine(t, r.stderr(), []string{"main"}, "")
		})
	})
}

// checkUsageLine checks that stderr is one line, recognisably mainstay's,
// naming one of names and value.
func checkUsageLine(t *testing.T, stderr string, names []string, value string) {
	t.Helper()
	ls := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(ls) != 1 || ls[0] == "" {
		t.Fatalf("stderr has %d lines, want one:\n%s", len(ls), stderr)
	}
	line := ls[0]
	if !strings.HasPrefix(line, "mainstay") {
		t.Errorf("line %q is not recognisably mainstay's", line)
	}
	named := false
	for _, n := range names {
		named = named || strings.Contains(line, n)
	}
	if !named {
		t.Errorf("line %q names none of %q", line, names)
	}
	if !strings.Contains(line, value) {
		t.Errorf("line %q does not show the value %q", line, value)
	}
}

// TestMainCannotStart: main not found → 127, not executable → 126, with
// the path in the message. What can be told from the file system is found
// before anything starts, in one line naming the program; a file the
// kernel cannot run fails when main starts.
func TestMainCannotStart(t *testing.T) {
	cases := []struct {
		name    string
		argv    func(dir string) []string
		want    int
		atStart bool // found only when main starts: logged "cannot start main"
	}{
		{"not-found-path", func(dir string) []string { return []string{filepath.Join(dir, "missing", "server")} }, 127, false},
		{"not-found-in-PATH", func(string) []string { return []string{"mainstay-e2e-no-such-program"} }, 127, false},
		{"no-exec-bit", func(dir string) []string {
			p := filepath.Join(dir, "server")
			writeFile(t, p, "#!/bin/sh\ntouch \""+dir+"/ran\"\n", 0o644)
			return []string{p}
		}, 126, false},
		{"not-an-executable-format", func(dir string) []string {
			p := filepath.Join(dir, "server")
			writeFile(t, p, "\x00\x01\x02 not a program\n", 0o755)
			return []string{p}
		}, 126, true},
		{"directory", func(dir string) []string { return []string{dir} }, 126, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				argv := c.argv(dir)
				r := start(t, m, dir, append([]string{"--log-format", "json", "--"}, argv...)...)
				if got := r.wait(long); got != c.want {
					t.Errorf("exit code %d, want %d", got, c.want)
				}
				if c.atStart {
					l := r.mustLog("cannot start main")
					if !strings.Contains(l.str("err"), argv[0]) {
						t.Errorf("log %v does not name %s in err", l, argv[0])
					}
				} else {
					checkPreflightLine(t, r, "main command: "+argv[0])
				}
				if exists(filepath.Join(dir, "ran")) {
					t.Error("main ran")
				}
			})
		})
	}
}

// checkPreflightLine checks that mainstay printed exactly one line, an
// error starting with want, and started nothing (no log line).
func checkPreflightLine(t *testing.T, r *run, want string) {
	t.Helper()
	out := r.stderr()
	if !strings.HasPrefix(out, "mainstay: error: "+want) || strings.Count(out, "\n") != 1 {
		t.Errorf("stderr %q, want one line starting %q", out, "mainstay: error: "+want)
	}
	if ls := r.logs(); len(ls) > 0 {
		t.Errorf("something started: %v", ls)
	}
}

func writeFile(t *testing.T, path, content string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}

// TestHelperCannotStart: a helper or exec probe not found → 127, not
// executable → 126, before anything starts: main never runs.
func TestHelperCannotStart(t *testing.T) {
	cases := []struct {
		name   string
		flag   string
		helper func(dir string) (cmd, path string)
		want   int
	}{
		{"not-found-path", "--helper", func(dir string) (string, string) {
			p := filepath.Join(dir, "missing", "migrate")
			return p + " up", p
		}, 127},
		{"not-found-in-PATH", "--helper", func(string) (string, string) {
			return "mainstay-e2e-no-such-migrate up", "mainstay-e2e-no-such-migrate"
		}, 127},
		{"no-exec-bit", "--helper", func(dir string) (string, string) {
			p := filepath.Join(dir, "migrate")
			writeFile(t, p, "#!/bin/sh\ntouch \""+dir+"/ran\"\n", 0o644)
			return p + " up", p
		}, 126},
		{"probe-not-found", "--ready", func(string) (string, string) {
			return "exec:mainstay-e2e-no-such-isready -q", "mainstay-e2e-no-such-isready"
		}, 127},
		{"probe-no-exec-bit", "--ready", func(dir string) (string, string) {
			p := filepath.Join(dir, "isready")
			writeFile(t, p, "#!/bin/sh\ntouch \""+dir+"/ran\"\n", 0o644)
			return "exec:" + p, p
		}, 126},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				value, path := c.helper(dir)
				main := serverMain(t, dir, 0)
				args := append([]string{"--log-format", "json", c.flag, value}, mainReady(dir)...)
				r := start(t, m, dir, append(args, "--", "sh", main)...)
				if got := r.wait(long); got != c.want {
					t.Errorf("exit code %d, want %d", got, c.want)
				}
				checkPreflightLine(t, r, fmt.Sprintf("%s %q: ", c.flag, value))
				if !strings.Contains(r.stderr(), path) {
					t.Errorf("stderr does not name %s", path)
				}
				if exists(filepath.Join(dir, "main.pid")) {
					t.Error("main was started")
				}
				if exists(filepath.Join(dir, "ran")) {
					t.Error("helper ran")
				}
			})
		})
	}
}

// TestReadyTimeout: readiness not reached within --ready-timeout → 124, each
// failing probe logged with its last error, main stopped.
func TestReadyTimeout(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := serverMain(t, dir, 0)
		ok := filepath.Join(dir, "exists")
		touch(t, ok)
		probe := script(t, dir, "probe.sh", "echo 'not accepting connections yet'\nexit 1\n")
		port := closedPort(t)
		failing := map[string]string{ // probe spec → text in its last error
			"file:" + filepath.Join(dir, "never"): "no such file or directory",
			"tcp:127.0.0.1:" + port:               "connection refused",
			"exec:sh " + probe:                    "not accepting connections yet",
		}
		args := append([]string{"--log-format", "json", "--ready-timeout", "1500ms", "--ready", "file:" + ok}, mainReady(dir)...)
		for spec := range failing {
			args = append(args, "--ready", spec)
		}
		began := time.Now()
		r := start(t, m, dir, append(args, "--", "sh", main)...)
		if got := r.wait(long); got != 124 {
			t.Errorf("exit code %d, want 124", got)
		}
		if d := r.endedAt().Sub(began); d < 1500*time.Millisecond {
			t.Errorf("gave up after %s, before --ready-timeout 1500ms", d)
		}
		logged := map[string]bool{}
		for _, l := range r.logsWith("probe still failing") {
			spec := l.str("probe")
			want, ok := failing[spec]
			switch {
			case !ok:
				t.Errorf("logged a probe that is not failing: %v", l)
			case !strings.Contains(l.str("err"), want):
				t.Errorf("probe %s: logged err %q, want its last error (%q)", spec, l.str("err"), want)
			}
			logged[spec] = true
		}
		for spec := range failing {
			if !logged[spec] {
				t.Errorf("probe %s not logged as failing", spec)
			}
		}
		if got := lines(filepath.Join(dir, "main.sigs")); !contains(got, "TERM") {
			t.Errorf("main got signals %q, want TERM: it was not stopped", got)
		}
	})
}

// closedPort is a TCP port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return port
}

// TestHelperFails: a helper exits N (policy stop) → N; killed by signal N →
// 128+N; main stopped, later helpers not run.
func TestHelperFails(t *testing.T) {
	cases := []struct {
		name, body string
		want       int
	}{
		{"exit5", "exit 5\n", 5},
		{"killed-by-SIGUSR1", "kill -USR1 $$\n", 138},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				main := serverMain(t, dir, 0)
				h1 := "sh " + script(t, dir, "h1.sh", c.body)
				h2 := "sh " + script(t, dir, "h2.sh", "touch \"$D/h2.ran\"\n")
				args := append([]string{"--log-format", "json", "--helper", h1, "--helper", h2}, mainReady(dir)...)
				r := start(t, m, dir, append(args, "--", "sh", main)...)
				if got := r.wait(long); got != c.want {
					t.Errorf("exit code %d, want %d", got, c.want)
				}
				l := r.mustLog("helper failed; stopping main")
				if l.str("helper") != h1 || l.num("exit_code") != c.want {
					t.Errorf("logged %v, want helper %q exit_code %d", l, h1, c.want)
				}
				if got := lines(filepath.Join(dir, "main.sigs")); !contains(got, "TERM") {
					t.Errorf("main got signals %q, want TERM: it was not stopped", got)
				}
				if exists(filepath.Join(dir, "h2.ran")) {
					t.Error("the helper after the failed one ran")
				}
			})
		})
	}
}

// stubbornGrandchild is sh code that starts a grandchild ignoring SIGTERM,
// which writes its PID to gc.pid; only SIGKILL ends it.
const stubbornGrandchild = `sh -c 'trap "" TERM; echo $$ > "$1/gc.pid"; while :; do sleep 0.05; done' gc "$D" &
`

// TestHelperTimeout: a helper outliving --helper-timeout → 124; its process
// group, a grandchild that ignores SIGTERM included, is killed at once (not
// left to the final sweep, which would wait out --grace); main stopped.
func TestHelperTimeout(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := serverMain(t, dir, 0)
		h := "sh " + script(t, dir, "helper.sh", stubbornGrandchild+`trap '' TERM
echo $$ > "$D/helper.pid"
while :; do sleep 0.05; done
`)
		args := append([]string{"--log-format", "json", "--helper-timeout", "1s", "--grace", "60s", "--helper", h}, mainReady(dir)...)
		r := start(t, m, dir, append(args, "--", "sh", main)...)
		helper, gc := r.pidFile("helper.pid"), r.pidFile("gc.pid")
		// With --grace 60s, a grandchild left to the sweep would hold mainstay up for a minute.
		if got := r.wait(long); got != 124 {
			t.Errorf("exit code %d, want 124", got)
		}
		l := r.mustLog("helper failed; stopping main")
		if l.str("helper") != h || l.num("exit_code") != 124 {
			t.Errorf("logged %v, want helper %q exit_code 124", l, h)
		}
		if got := lines(filepath.Join(dir, "main.sigs")); !contains(got, "TERM") {
			t.Errorf("main got signals %q, want TERM: it was not stopped", got)
		}
		mustBeGone(t, "helper", helper)
		mustBeGone(t, "helper's grandchild", gc)
	})
}

// TestHelperFailureContinue: with --on-helper-failure continue a failed
// helper is logged, the next helpers run, and the exit code is main's.
func TestHelperFailureContinue(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", `while [ ! -e "$D/go" ]; do sleep 0.05; done
exit 3
`)
		h1 := "sh " + script(t, dir, "h1.sh", "exit 7\n")
		h2 := "sh " + script(t, dir, "h2.sh", "touch \"$D/h2.ran\"\n")
		r := start(t, m, dir, "--log-format", "json", "--on-helper-failure", "continue",
			"--helper", h1, "--helper", h2, "--", "sh", main)
		r.waitLog("main in the foreground")
		if !exists(filepath.Join(dir, "h2.ran")) {
			t.Error("the helper after the failed one did not run")
		}
		touch(t, filepath.Join(dir, "go"))
		if got := r.wait(long); got != 3 {
			t.Errorf("exit code %d, want main's 3", got)
		}
		if l := r.mustLog("helper failed; continuing"); l.str("helper") != h1 {
			t.Errorf("logged %v, want helper %q", l, h1)
		}
		r.mustNotLog("helper failed; stopping main")
	})
}
