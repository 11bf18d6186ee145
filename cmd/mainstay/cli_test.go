package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Placeholders in the args of the bad-input cases: the main command, which
// would create MARKER if it were ever started.
const (
	argvMain = "{argv main}" // expands to: -- sh -c 'touch MARKER'
	flagMain = "{--main}"    // expands to: --main "sh -c 'touch MARKER'"
)

func expand(args []string, marker string) []string {
	var out []string
	for _, a := range args {
		switch a {
		case argvMain:
			out = append(out, "--", "sh", "-c", "touch "+marker)
		case flagMain:
			out = append(out, "--main", "sh -c 'touch "+marker+"'")
		default:
			out = append(out, a)
		}
	}
	return out
}

// Bad input: run returns 2, prints exactly one line naming the flag (or the
// variable) and the bad value, and starts nothing.
func TestRunBadInput(t *testing.T) {
	ct := t.TempDir()
	crontab := func(name, body string) string {
		path := filepath.Join(ct, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	userField := crontab("userfield", "# m h dom mon dow user command\n0 3 * * * root tidy --all\n")
	badMinute := crontab("badminute", "SHELL=/bin/sh\n\n61 * * * * true\n")
	cronTZ := crontab("crontz", "CRON_TZ=Europe/Berlin\n@daily true\n")
	named := crontab("named", "@daily report --all\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		// Every fragment must appear in the message; "a|b" means a or b.
		want []string
	}{
		{name: "unknown long flag", args: []string{"--bogus", argvMain}, want: []string{"--bogus"}},
		{name: "unknown short flag", args: []string{"-x", argvMain}, want: []string{"-x"}},
		{name: "ready-timeout not a duration", args: []string{"--ready-timeout=abc", argvMain}, want: []string{"--ready-timeout", `"abc"`}},
		{name: "duration without unit", args: []string{"--grace=10", argvMain}, want: []string{"--grace", `"10"`}},
		{name: "negative grace", args: []string{"--grace=-1s", argvMain}, want: []string{"--grace", "-1s"}},
		{name: "negative ready-timeout", args: []string{"--ready-timeout=-2m", argvMain}, want: []string{"--ready-timeout", "-2m"}},
		{name: "negative helper-timeout", args: []string{"--helper-timeout=-5s", argvMain}, want: []string{"--helper-timeout", "-5s"}},
		{name: "zero ready-interval", args: []string{"--ready-interval=0", argvMain}, want: []string{"--ready-interval", "0s"}},
		{name: "negative ready-max-interval", args: []string{"--ready-max-interval=-1ms", argvMain}, want: []string{"--ready-max-interval", "-1ms"}},
		{name: "zero ready-attempt-timeout", args: []string{"--ready-attempt-timeout=0", argvMain}, want: []string{"--ready-attempt-timeout", "0s"}},
		{
			name: "interval longer than max interval", args: []string{"--ready-interval=1s", "--ready-max-interval=500ms", argvMain},
			want: []string{"--ready-interval", "1s", "--ready-max-interval", "500ms"},
		},
		{
			name: "max interval below the default interval", args: []string{"--ready-max-interval=5ms", argvMain},
			want: []string{"--ready-interval", "10ms", "--ready-max-interval", "5ms"},
		},
		{name: "flag without its value", args: []string{flagMain, "--grace"}, want: []string{"--grace: no value given"}},
		{name: "unknown signal name", args: []string{"--stop-signal", "FOO", argvMain}, want: []string{"--stop-signal", `"FOO"`}},
		{name: "unknown signal with SIG prefix", args: []string{"--stop-signal=SIGFOO", argvMain}, want: []string{"--stop-signal", `"SIGFOO"`}},
		{name: "signal 0", args: []string{"--stop-signal", "0", argvMain}, want: []string{"--stop-signal", "0"}},
		{name: "signal 99", args: []string{"--stop-signal", "99", argvMain}, want: []string{"--stop-signal", "99"}},
		{name: "probe tcp without port", args: []string{"--ready", "tcp:", argvMain}, want: []string{"--ready", `"tcp:"`}},
		{name: "probe port too big", args: []string{"--ready", "tcp:99999", argvMain}, want: []string{"--ready", `"tcp:99999"`}},
		{name: "probe port zero", args: []string{"--ready", "tcp:0", argvMain}, want: []string{"--ready", `"tcp:0"`}},
		{name: "probe port not a number", args: []string{"--ready", "tcp:abc", argvMain}, want: []string{"--ready", `"tcp:abc"`}},
		{name: "probe empty host", args: []string{"--ready", "tcp::80", argvMain}, want: []string{"--ready", `"tcp::80"`}},
		{name: "probe file without path", args: []string{"--ready", "file:", argvMain}, want: []string{"--ready", `"file:"`}},
		{name: "probe exec without command", args: []string{"--ready", "exec:", argvMain}, want: []string{"--ready", `"exec:"`}},
		{name: "probe exec unbalanced quote", args: []string{"--ready", "exec:'unbalanced", argvMain}, want: []string{"--ready", `"exec:'unbalanced"`}},
		{name: "probe exec shell operator", args: []string{"--ready", "exec:a && b", argvMain}, want: []string{"--ready", `"exec:a && b"`, "shell operator"}},
		{name: "probe unknown kind", args: []string{"--ready", "foo:bar", argvMain}, want: []string{"--ready", `"foo:bar"`}},
		{name: "probe without kind", args: []string{"--ready", "nocolon", argvMain}, want: []string{"--ready", `"nocolon"`}},
		{name: "probe http without host", args: []string{"--ready", "http://:8080/", argvMain}, want: []string{"--ready", `"http://:8080/"`}},
		{name: "probe unix without path", args: []string{"--ready", "unix:", argvMain}, want: []string{"--ready", `"unix:"`}},
		{name: "probe log bad regex", args: []string{"--ready", "log:(ready", argvMain}, want: []string{"--ready", `"log:(ready"`}},
		{name: "probe notify with an argument", args: []string{"--ready", "notify:x", argvMain}, want: []string{"--ready", `"notify:x"`, "no argument"}},
		{name: "probe notify twice", args: []string{"--ready", "notify", "--ready", "notify", argvMain}, want: []string{"--ready", `"notify"`, "more than once"}},
		{name: "probe tcp url without host", args: []string{"--ready", "tcp://6379", argvMain}, want: []string{"--ready", `"tcp://6379"`}},
		{name: "probe tcp host with a slash", args: []string{"--ready", "tcp:a/b:80", argvMain}, want: []string{"--ready", `"tcp:a/b:80"`}},
		{name: "probe unix url relative", args: []string{"--ready", "unix://x.sock", argvMain}, want: []string{"--ready", `"unix://x.sock"`}},
		{name: "probe http bad host", args: []string{"--ready", "http://a!b/", argvMain}, want: []string{"--ready", `"http://a!b/"`}},
		{name: "bad probe after a good one", args: []string{"--ready", "tcp:5432", "--ready=tcp:abc", argvMain}, want: []string{"--ready", `"tcp:abc"`}},
		{name: "main unbalanced quotes", args: []string{"--main", "sh -c 'touch x"}, want: []string{"--main", `"sh -c 'touch x"`, "unbalanced"}},
		{name: "main shell operator", args: []string{"--main", "touch x && touch y"}, want: []string{"--main", `"touch x && touch y"`, "shell operator"}},
		{name: "main empty", args: []string{"--main", ""}, want: []string{"--main", `""`}},
		{name: "helper unbalanced quotes", args: []string{"--helper", `migrate "up`, argvMain}, want: []string{"--helper", `"migrate \"up"`, "unbalanced"}},
		{name: "helper shell operator", args: []string{"--helper", "migrate up; seed", argvMain}, want: []string{"--helper", `"migrate up; seed"`, "shell operator"}},
		{name: "helper pipe", args: []string{"--helper", "gen | load", argvMain}, want: []string{"--helper", `"gen | load"`, "shell operator"}},
		{name: "no main", args: nil, want: []string{"no main command", "--main"}},
		{name: "no main, only flags", args: []string{"--ready", "tcp:5432", "--helper", "true"}, want: []string{"no main command"}},
		{name: "both --main and argv", args: []string{flagMain, argvMain}, want: []string{"--main", "touch", "both given"}},
		{name: "bad on-helper-failure", args: []string{"--on-helper-failure=maybe", argvMain}, want: []string{"--on-helper-failure", `"maybe"`}},
		{name: "bad log-format", args: []string{"--log-format=xml", argvMain}, want: []string{"--log-format", `"xml"`}},
		{name: "bad log-level", args: []string{"--log-level", "verbose", argvMain}, want: []string{"--log-level", `"verbose"`}},
		{name: "helpers-dir absent", args: []string{"--helpers-dir=/mainstay-no-such-dir", argvMain}, want: []string{"--helpers-dir", "/mainstay-no-such-dir does not exist"}},
		{name: "ready-file in an absent directory", args: []string{"--ready-file", "/mainstay-no-such-dir/ready", argvMain}, want: []string{"--ready-file", "/mainstay-no-such-dir does not exist"}},
		{name: "ready-file in a file", args: []string{"--ready-file", "/etc/passwd/ready", argvMain}, want: []string{"--ready-file", "/etc/passwd is not a directory"}},
		{name: "once-marker in an absent directory", args: []string{"--once-marker", "/mainstay-no-such-dir/done", argvMain}, want: []string{"--once-marker", "/mainstay-no-such-dir does not exist"}},
		{name: "unknown user", args: []string{"--user", "mainstay-no-such-user", argvMain}, want: []string{"--user", "mainstay-no-such-user"}},
		{name: "user with empty group", args: []string{"--user=root:", argvMain}, want: []string{"--user", `"root:"`}},
		{name: "unknown group", args: []string{"--user=root:mainstay-no-such-group", argvMain}, want: []string{"--user", "mainstay-no-such-group"}},

		// A blank value of a repeatable flag on the command line.
		{name: "blank before", args: []string{"--before", "", argvMain}, want: []string{"--before", "blank value"}},
		{name: "spaces before", args: []string{"--before=   ", argvMain}, want: []string{"--before", "blank value"}},
		{name: "blank helper", args: []string{"--helper", " ", argvMain}, want: []string{"--helper", "blank value"}},
		{name: "blank wait-for", args: []string{"--wait-for", "", argvMain}, want: []string{"--wait-for", "blank value", "probe"}},
		{name: "blank ready", args: []string{"--ready=", argvMain}, want: []string{"--ready", "blank value", "probe"}},
		{name: "blank sidecar", args: []string{"--sidecar", "", argvMain}, want: []string{"--sidecar", "blank value"}},

		// Sidecar keys given twice, a name with a control character.
		{name: "sidecar key twice", args: []string{"--sidecar", "retries=5 retries=1 -- sleep 1", argvMain}, want: []string{"--sidecar", "retries= given more than once"}},
		{name: "sidecar restart twice", args: []string{"--sidecar", "restart=no restart=always -- sleep 1", argvMain}, want: []string{"--sidecar", "restart= given more than once"}},
		{name: "sidecar name with escape", args: []string{"--sidecar", "name=a\x1b[31m -- sleep 1", argvMain}, want: []string{"--sidecar", "control characters"}},

		// Daemons and the per-sidecar keys of the third round.
		{name: "sidecar pidfile relative", args: []string{"--sidecar", "pidfile=run/x.pid -- memcached -d", argvMain}, want: []string{"--sidecar", `"pidfile=run/x.pid"`, "absolute path"}},
		{name: "sidecar pidfile empty", args: []string{"--sidecar", "pidfile= -- memcached -d", argvMain}, want: []string{"--sidecar", `"pidfile="`, "absolute path"}},
		{name: "sidecar pidfile a directory", args: []string{"--sidecar", "pidfile=/run/ -- memcached -d", argvMain}, want: []string{"--sidecar", `"pidfile=/run/"`, "not a directory's"}},
		{name: "sidecar pidfile twice", args: []string{"--sidecar", "pidfile=/a pidfile=/b -- memcached -d", argvMain}, want: []string{"--sidecar", "pidfile= given more than once"}},
		{name: "sidecar env without =", args: []string{"--sidecar", "env=FOO -- sleep 1", argvMain}, want: []string{"--sidecar", `"env=FOO"`, "want env=KEY=VALUE"}},
		{name: "sidecar env empty key", args: []string{"--sidecar", "env==x -- sleep 1", argvMain}, want: []string{"--sidecar", `"env==x"`, "want env=KEY=VALUE"}},
		{name: "sidecar dir empty", args: []string{"--sidecar", "dir= -- sleep 1", argvMain}, want: []string{"--sidecar", `"dir="`, "empty directory"}},
		{name: "sidecar dir twice", args: []string{"--sidecar", "dir=/a dir=/b -- sleep 1", argvMain}, want: []string{"--sidecar", "dir= given more than once"}},
		{name: "sidecar ready-timeout not a duration", args: []string{"--sidecar", "ready-timeout=3 -- sleep 1", argvMain}, want: []string{"--sidecar", `"ready-timeout=3"`, "want a duration"}},
		{name: "sidecar ready-timeout negative", args: []string{"--sidecar", "ready-timeout=-1s -- sleep 1", argvMain}, want: []string{"--sidecar", `"ready-timeout=-1s"`, "want a duration"}},
		{name: "sidecar unknown key names the new ones", args: []string{"--sidecar", "pid-file=/x -- sleep 1", argvMain}, want: []string{"--sidecar", `unknown option "pid-file"`, "pidfile, env, dir, ready-timeout"}},

		// Scheduled entries: bad schedules, options, names; nothing starts.
		{name: "cron minute out of range", args: []string{"--cron", "61 * * * * -- true", argvMain}, want: []string{"--cron", `"61 * * * * -- true"`, `minute "61"`}},
		{name: "cron unknown keyword", args: []string{"--cron", "@fortnightly -- true", argvMain}, want: []string{"--cron", `"@fortnightly"`}},
		{name: "cron every too short", args: []string{"--cron", "@every 500ms -- true", argvMain}, want: []string{"--cron", `"500ms"`}},
		{name: "cron six fields", args: []string{"--cron", "0 0 * * * * -- true", argvMain}, want: []string{"--cron", `"0 0 * * * * -- true"`}},
		{name: "cron without --", args: []string{"--cron", "@daily backup", argvMain}, want: []string{"--cron", `"@daily backup"`, "no --"}},
		{name: "cron without command", args: []string{"--cron", "@daily --", argvMain}, want: []string{"--cron", "no command"}},
		{name: "cron without schedule", args: []string{"--cron", "name=x -- true", argvMain}, want: []string{"--cron", "no schedule"}},
		{name: "cron bad overlap", args: []string{"--cron", "@daily overlap=queue -- true", argvMain}, want: []string{"--cron", `"overlap=queue"`, "skip or allow"}},
		{name: "cron bad timeout", args: []string{"--cron", "@daily timeout=soon -- true", argvMain}, want: []string{"--cron", `"timeout=soon"`}},
		{name: "cron unknown option", args: []string{"--cron", "@daily retries=3 -- true", argvMain}, want: []string{"--cron", `"retries=3"`, "unknown option"}},
		{name: "cron key twice", args: []string{"--cron", "@daily name=a name=b -- true", argvMain}, want: []string{"--cron", `"name=b"`, "more than once"}},
		{name: "cron bad env", args: []string{"--cron", "@daily env=FOO -- true", argvMain}, want: []string{"--cron", `"env=FOO"`}},
		{name: "cron unknown user", args: []string{"--cron", "@daily user=mainstay-no-such-user -- true", argvMain}, want: []string{"--cron", "mainstay-no-such-user"}},
		{name: "cron shell operator", args: []string{"--cron", "@daily -- tidy > /dev/null", argvMain}, want: []string{"--cron", "shell operator"}},
		{name: "cron named main", args: []string{"--cron", "@daily name=main -- true", argvMain}, want: []string{"--cron", `"@daily name=main -- true"`, `name "main"`}},
		{name: "cron named as a sidecar", args: []string{"--sidecar", "name=cache -- sleep 1", "--cron", "@daily name=cache -- true", argvMain}, want: []string{"--cron", `name "cache"`, "sidecar"}},
		{name: "cron names twice", args: []string{"--cron", "@daily -- backup", "--cron", "@hourly name=backup -- true", argvMain}, want: []string{"--cron", `name "backup"`, "another cron entry"}},
		{name: "cron password hidden", args: []string{"--cron", "@daily x=1 -- curl https://u:secret@example.com/", argvMain}, want: []string{"--cron", `"x=1"`, "xxxxx"}},
		{name: "blank cron", args: []string{"--cron", "", argvMain}, want: []string{"--cron", "blank value"}},
		{name: "crontab absent", args: []string{"--crontab", "/mainstay-no-such-dir/crontab", argvMain}, want: []string{"--crontab", "/mainstay-no-such-dir/crontab", "no such file"}},
		{name: "crontab user field", args: []string{"--crontab", userField, argvMain}, want: []string{"--crontab", userField + ":2", `"root"`, "user="}},
		{name: "crontab bad minute", args: []string{"--crontab", badMinute, argvMain}, want: []string{"--crontab", badMinute + ":3", `minute "61"`}},
		{name: "crontab CRON_TZ", args: []string{"--crontab", cronTZ, argvMain}, want: []string{"--crontab", cronTZ + ":1", "CRON_TZ"}},
		{name: "crontab name taken by --cron", args: []string{"--cron", "@daily name=report -- true", "--crontab", named, argvMain}, want: []string{named + ":1", `name "report"`}},
		{name: "blank crontab", args: []string{"--crontab=", argvMain}, want: []string{"--crontab", "blank file name"}},

		// The same mistakes through the environment.
		{name: "env ready-timeout", env: map[string]string{"MAINSTAY_READY_TIMEOUT": "abc"}, args: []string{argvMain}, want: []string{"MAINSTAY_READY_TIMEOUT", `"abc"`}},
		{name: "env stop-signal", env: map[string]string{"MAINSTAY_STOP_SIGNAL": "FOO"}, args: []string{argvMain}, want: []string{"MAINSTAY_STOP_SIGNAL", `"FOO"`}},
		{name: "env ready", env: map[string]string{"MAINSTAY_READY": "tcp:abc"}, args: []string{argvMain}, want: []string{"MAINSTAY_READY", `"tcp:abc"`}},
		{name: "env ready bad second line", env: map[string]string{"MAINSTAY_READY": "tcp:5432\nexec:a && b"}, args: []string{argvMain}, want: []string{"MAINSTAY_READY", `"exec:a && b"`}},
		{name: "env signal-group", env: map[string]string{"MAINSTAY_SIGNAL_GROUP": "maybe"}, args: []string{argvMain}, want: []string{"MAINSTAY_SIGNAL_GROUP", `"maybe"`}},
		{name: "env helper bad quotes", env: map[string]string{"MAINSTAY_HELPER": "echo ok\nsh -c 'x"}, args: []string{argvMain}, want: []string{"MAINSTAY_HELPER", `"sh -c 'x"`}},
		{name: "env helper shell operator", env: map[string]string{"MAINSTAY_HELPER": "a > b"}, args: []string{argvMain}, want: []string{"MAINSTAY_HELPER", `"a > b"`}},
		{name: "env main bad quotes", env: map[string]string{"MAINSTAY_MAIN": `sh -c "x`}, want: []string{"MAINSTAY_MAIN", `"sh -c \"x"`}},
		{name: "env main and argv", env: map[string]string{"MAINSTAY_MAIN": "sleep 1"}, args: []string{argvMain}, want: []string{"--main|MAINSTAY_MAIN", `"sleep 1"`, "both given"}},
		{name: "env negative grace", env: map[string]string{"MAINSTAY_GRACE": "-1s"}, args: []string{argvMain}, want: []string{"MAINSTAY_GRACE|--grace", "-1s"}},
		{name: "env zero interval", env: map[string]string{"MAINSTAY_READY_INTERVAL": "0"}, args: []string{argvMain}, want: []string{"MAINSTAY_READY_INTERVAL|--ready-interval", "0s"}},
		{name: "env on-helper-failure", env: map[string]string{"MAINSTAY_ON_HELPER_FAILURE": "maybe"}, args: []string{argvMain}, want: []string{"MAINSTAY_ON_HELPER_FAILURE|--on-helper-failure", `"maybe"`}},
		{name: "env misspelt variable", env: map[string]string{"MAINSTAY_READY_TIMOUT": "5s"}, args: []string{argvMain}, want: []string{"MAINSTAY_READY_TIMOUT"}},
		{name: "env misspelt variable suggested", env: map[string]string{"MAINSTAY_READY_TIMOUT": "5s"}, args: []string{argvMain}, want: []string{"unknown environment variable MAINSTAY_READY_TIMOUT", "did you mean MAINSTAY_READY_TIMEOUT?"}},
		{name: "env misspelt prefix", env: map[string]string{"MAINSTAY_HELPERS": "true"}, args: []string{argvMain}, want: []string{"MAINSTAY_HELPERS", "did you mean MAINSTAY_HELPER?"}},
		{name: "env log-level", env: map[string]string{"MAINSTAY_LOG_LEVEL": "loud"}, args: []string{argvMain}, want: []string{"MAINSTAY_LOG_LEVEL", `"loud"`}},
		{name: "env once-marker absent dir", env: map[string]string{"MAINSTAY_ONCE_MARKER": "/mainstay-no-such-dir/done"}, args: []string{argvMain}, want: []string{"MAINSTAY_ONCE_MARKER", "/mainstay-no-such-dir does not exist"}},
		{name: "env helpers-dir absent", env: map[string]string{"MAINSTAY_HELPERS_DIR": "/mainstay-no-such-dir"}, args: []string{argvMain}, want: []string{"MAINSTAY_HELPERS_DIR|--helpers-dir", "/mainstay-no-such-dir"}},
		{name: "env cron bad second line", env: map[string]string{"MAINSTAY_CRON": "@daily -- true\n@hourly overlap=never -- tidy"}, args: []string{argvMain}, want: []string{"MAINSTAY_CRON", `"@hourly overlap=never -- tidy"`, `"overlap=never"`}},
		{name: "env cron bad schedule", env: map[string]string{"MAINSTAY_CRON": "*/0 * * * * -- tidy"}, args: []string{argvMain}, want: []string{"MAINSTAY_CRON", `"*/0"`}},
		{name: "env cron name taken", env: map[string]string{"MAINSTAY_CRON": "@daily -- tidy\n@hourly name=tidy -- true"}, args: []string{argvMain}, want: []string{"MAINSTAY_CRON", `"@hourly name=tidy -- true"`, `name "tidy"`}},
		{name: "env cron named main", env: map[string]string{"MAINSTAY_CRON": "@daily name=main -- tidy"}, args: []string{argvMain}, want: []string{"MAINSTAY_CRON", `name "main"`}},
		{name: "env crontab absent", env: map[string]string{"MAINSTAY_CRONTAB": "/mainstay-no-such-dir/crontab"}, args: []string{argvMain}, want: []string{"MAINSTAY_CRONTAB", "/mainstay-no-such-dir/crontab"}},
		{name: "env crontab user field", env: map[string]string{"MAINSTAY_CRONTAB": userField}, args: []string{argvMain}, want: []string{"MAINSTAY_CRONTAB", userField + ":2", `"root"`}},
		{name: "env log-format", env: map[string]string{"MAINSTAY_LOG_FORMAT": "xml"}, args: []string{argvMain}, want: []string{"MAINSTAY_LOG_FORMAT|--log-format", `"xml"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkBadInput(t, tt.args, tt.env, tt.want) })
	}
}

// checkBadInput runs mainstay in-process with bad args (argvMain and
// flagMain expanded) and env, and checks that it exits 2 with exactly one
// line naming every fragment of want ("a|b": a or b), having started
// nothing.
func checkBadInput(t *testing.T, args []string, env map[string]string, want []string) {
	t.Helper()
	marker := filepath.Join(t.TempDir(), "MARKER")
	for k, v := range env {
		t.Setenv(k, v)
	}
	args = expand(args, marker)
	// run starts the process-wide reaper and main once parsing
	// succeeds; never let it do that in this process.
	if _, err := parseCLI(args, "test", io.Discard); err == nil {
		t.Fatalf("parse(%q) accepted bad input", args)
	}
	var stderr bytes.Buffer
	if code := run(args, io.Discard, &stderr); code != 2 {
		t.Errorf("run = %d, want 2", code)
	}
	out := stderr.String()
	if !strings.HasPrefix(out, "mainstay: error: ") || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("stderr = %q, want exactly one line starting %q", out, "mainstay: error: ")
	}
	for _, w := range want {
		if !containsAny(out, strings.Split(w, "|")) {
			t.Errorf("stderr = %q, want it to name %s", out, strings.ReplaceAll(w, "|", " or "))
		}
	}
	if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("main was started on bad input: %s exists (stat: %v)", marker, err)
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// mustParse parses args or fails the test.
func mustParse(t *testing.T, args ...string) *CLI {
	t.Helper()
	cli, err := parseCLI(args, "test", io.Discard)
	if err != nil {
		t.Fatalf("parse(%q): %v", args, err)
	}
	return cli
}

// helperArgvs returns the argv of each --helper, and the line it was split
// from (the helper's name in logs and errors).
func helperArgvs(cli *CLI) (argvs [][]string, lines []string) {
	for _, h := range cli.Helper {
		argvs = append(argvs, h.argv)
		lines = append(lines, h.line)
	}
	return argvs, lines
}

func probeSpecs(cli *CLI) []string {
	var specs []string
	for _, p := range cli.Ready {
		specs = append(specs, p.String())
	}
	return specs
}

func TestParseDefaults(t *testing.T) {
	cli := mustParse(t, "--", "postgres")
	got := []any{cli.ReadyTimeout, cli.ReadyInterval, cli.ReadyMaxInterval, cli.ReadyAttemptTimeout,
		cli.HelperTimeout, cli.OnHelperFailure, cli.HelperPrefix, syscall.Signal(cli.StopSignal), cli.Grace, cli.SignalGroup,
		cli.LogFormat, cli.LogLevel, len(cli.Ready), len(cli.Helper)}
	want := []any{60 * time.Second, 10 * time.Millisecond, time.Duration(0), 5 * time.Second, // max interval 0: per kind
		time.Duration(0), "stop", "[{helper}] ", syscall.SIGTERM, 8 * time.Second, false,
		"text", "info", 0, 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults = %v, want %v", got, want)
	}
}

func TestParseMain(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"after --", []string{"--", "sh", "-c", "exit 3"}, nil, []string{"sh", "-c", "exit 3"}},
		{"without --", []string{"postgres", "-c", "fsync=off"}, nil, []string{"postgres", "-c", "fsync=off"}},
		{"flags before --", []string{"--grace=1s", "--ready", "tcp:5432", "--", "postgres"}, nil, []string{"postgres"}},
		{"a later -- belongs to main", []string{"--", "sh", "--", "x"}, nil, []string{"sh", "--", "x"}},
		{"main's own flags are not mainstay's", []string{"--", "app", "--grace", "1s", "--version"}, nil, []string{"app", "--grace", "1s", "--version"}},
		{"flags after main without -- are main's", []string{"app", "--ready", "x"}, nil, []string{"app", "--ready", "x"}},
		{"--main splits like a shell", []string{"--main", "a 'b c'"}, nil, []string{"a", "b c"}},
		{"--main keeps nested quotes", []string{"--main", `sh -c 'echo "x y", z'`}, nil, []string{"sh", "-c", `echo "x y", z`}},
		{"--main with backslash", []string{`--main=printf a\ b`}, nil, []string{"printf", "a b"}},
		{"MAINSTAY_MAIN", nil, map[string]string{"MAINSTAY_MAIN": `sleep "1"`}, []string{"sleep", "1"}},
		{"--main overrides MAINSTAY_MAIN", []string{"--main", "a b"}, map[string]string{"MAINSTAY_MAIN": "c d"}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cli := mustParse(t, tt.args...)
			if got := cli.plan().Main.Argv; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("main argv = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseLists(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantProbes []string
		wantArgvs  [][]string
		wantNames  []string
	}{
		{
			name:      "helper env lines keep commas, quotes and spaces",
			env:       map[string]string{"MAINSTAY_HELPER": "echo a, \"b c\"\nsh -c \"x\""},
			wantArgvs: [][]string{{"echo", "a,", "b c"}, {"sh", "-c", "x"}},
			wantNames: []string{`echo a, "b c"`, `sh -c "x"`},
		},
		{
			name:      "helper env blank lines and trailing newline ignored",
			env:       map[string]string{"MAINSTAY_HELPER": "echo a\n\n  \necho 'b, c'\n"},
			wantArgvs: [][]string{{"echo", "a"}, {"echo", "b, c"}},
			wantNames: []string{"echo a", "echo 'b, c'"},
		},
		{
			name:       "ready env lines",
			env:        map[string]string{"MAINSTAY_READY": "tcp:5432\nfile:/run/a,b c\nexec:pg_isready -h \"db host\""},
			wantProbes: []string{"tcp:5432", "file:/run/a,b c", `exec:pg_isready -h "db host"`},
		},
		{
			name:       "repeated flags keep their order and commas",
			args:       []string{"--helper", "migrate up", "--helper=seed a,b", "--helper", "warm 'x y'", "--ready", "file:/a,b", "--ready", "tcp:1", "--", "main"},
			wantArgvs:  [][]string{{"migrate", "up"}, {"seed", "a,b"}, {"warm", "x y"}},
			wantNames:  []string{"migrate up", "seed a,b", "warm 'x y'"},
			wantProbes: []string{"file:/a,b", "tcp:1"},
		},
		{
			name:       "flags override env lists",
			args:       []string{"--helper", "from flag", "--ready", "tcp:2", "--", "main"},
			env:        map[string]string{"MAINSTAY_HELPER": "from env\nalso env", "MAINSTAY_READY": "tcp:1"},
			wantArgvs:  [][]string{{"from", "flag"}},
			wantNames:  []string{"from flag"},
			wantProbes: []string{"tcp:2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if args == nil {
				args = []string{"--", "main"}
			}
			cli := mustParse(t, args...)
			argvs, names := helperArgvs(cli)
			if !reflect.DeepEqual(argvs, tt.wantArgvs) {
				t.Errorf("helper argvs = %q, want %q", argvs, tt.wantArgvs)
			}
			if !reflect.DeepEqual(names, tt.wantNames) {
				t.Errorf("helper names = %q, want %q", names, tt.wantNames)
			}
			if specs := probeSpecs(cli); !reflect.DeepEqual(specs, tt.wantProbes) {
				t.Errorf("probes = %q, want %q", specs, tt.wantProbes)
			}
		})
	}
}

func TestParseScalarsFlagOverridesEnv(t *testing.T) {
	t.Setenv("MAINSTAY_READY_TIMEOUT", "5s")
	t.Setenv("MAINSTAY_GRACE", "3s")
	t.Setenv("MAINSTAY_STOP_SIGNAL", "INT")
	t.Setenv("MAINSTAY_ON_HELPER_FAILURE", "continue")
	t.Setenv("MAINSTAY_SIGNAL_GROUP", "true")
	cli := mustParse(t, "--ready-timeout=7s", "--stop-signal", "HUP", "--", "main")
	got := []any{cli.ReadyTimeout, cli.Grace, syscall.Signal(cli.StopSignal), cli.OnHelperFailure, cli.SignalGroup}
	want := []any{7 * time.Second, 3 * time.Second, syscall.SIGHUP, "continue", true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("[ready-timeout grace stop-signal on-helper-failure signal-group] = %v, want %v", got, want)
	}
}

// TestFlagWinsOverVariable: a variable is read only when its flag is not
// given, so a bad one beside its flag is no error, for each kind of flag.
func TestFlagWinsOverVariable(t *testing.T) {
	for _, tc := range []struct {
		env, value string
		args       []string
		check      func(*CLI) bool
	}{
		{"MAINSTAY_GRACE", "bogus", []string{"--grace", "2s"}, func(c *CLI) bool { return c.Grace == 2*time.Second }},
		{"MAINSTAY_SIDECAR", "restart=never -- x", []string{"--sidecar", "sleep 1"}, func(c *CLI) bool { return len(c.Sidecar) == 1 && c.Sidecar[0].Name == "sleep" }},
		{"MAINSTAY_WAIT_FOR", "bogus", []string{"--wait-for", "tcp:1"}, func(c *CLI) bool { return len(c.WaitFor) == 1 }},
		{"MAINSTAY_STOP_SIGNAL", "FOO", []string{"--stop-signal=INT"}, func(c *CLI) bool { return syscall.Signal(c.StopSignal) == syscall.SIGINT }},
		{"MAINSTAY_LOG_FORMAT", "xml", []string{"--log-format", "json"}, func(c *CLI) bool { return c.LogFormat == "json" }},
		{"MAINSTAY_SIGNAL_GROUP", "maybe", []string{"--signal-group"}, func(c *CLI) bool { return c.SignalGroup }},
		{"MAINSTAY_USER", "mainstay-no-such-user", []string{"--user", "root"}, func(c *CLI) bool { return c.User.u != nil && c.User.u.Spec == "root" }},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			cli, err := parseCLI(append(tc.args, "--", "true"), "test", io.Discard)
			if err != nil {
				t.Fatalf("%s=%q beside %q: %v, want the flag to win", tc.env, tc.value, tc.args, err)
			}
			if !tc.check(cli) {
				t.Errorf("%q did not take effect", tc.args)
			}
		})
	}
}

func TestParseStopSignal(t *testing.T) {
	tests := []struct {
		name, value string
		env         bool
		want        syscall.Signal
	}{
		{"name", "TERM", false, syscall.SIGTERM},
		{"SIG name", "SIGINT", false, syscall.SIGINT},
		{"lower case", "sigint", false, syscall.SIGINT},
		{"lower case without SIG", "quit", false, syscall.SIGQUIT},
		{"number", "2", false, syscall.SIGINT},
		{"highest number", "64", false, syscall.Signal(64)},
		{"from env", "SIGUSR1", true, syscall.SIGUSR1},
		{"number from env", "15", true, syscall.SIGTERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--stop-signal", tt.value, "--", "main"}
			if tt.env {
				t.Setenv("MAINSTAY_STOP_SIGNAL", tt.value)
				args = args[2:]
			}
			if got := syscall.Signal(mustParse(t, args...).StopSignal); got != tt.want {
				t.Errorf("--stop-signal %s = %d (%v), want %d (%v)", tt.value, got, got, tt.want, tt.want)
			}
		})
	}
}
