package main

import (
	"strings"
	"testing"
	"time"
)

// Bad input to the before-main flags (--wait-for, --wait-for-timeout,
// --before, --helper-retries, --restart-delay, --restart-max-delay) and
// their variables: run returns 2, prints exactly one line naming the flag
// (or the variable) and the bad value, and starts nothing.
func TestRunBadBeforeInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // every fragment must appear; "a|b" means a or b
	}{
		{name: "wait-for log", args: []string{"--wait-for", "log:x", argvMain}, want: []string{"--wait-for", `"log:x"`, "--ready"}},
		{name: "wait-for notify", args: []string{"--wait-for", "notify", argvMain}, want: []string{"--wait-for", `"notify"`}},
		{name: "wait-for tcp without port", args: []string{"--wait-for", "tcp:", argvMain}, want: []string{"--wait-for", `"tcp:"`}},
		{name: "wait-for tcp empty host", args: []string{"--wait-for", "tcp::5432", argvMain}, want: []string{"--wait-for", `"tcp::5432"`}},
		{name: "wait-for tcp port too big", args: []string{"--wait-for", "tcp:db:99999", argvMain}, want: []string{"--wait-for", `"tcp:db:99999"`}},
		{name: "wait-for unknown kind", args: []string{"--wait-for", "dns:db", argvMain}, want: []string{"--wait-for", `"dns:db"`}},
		{name: "wait-for exec shell operator", args: []string{"--wait-for", "exec:pg_isready && true", argvMain}, want: []string{"--wait-for", `"exec:pg_isready && true"`, "shell operator"}},
		{name: "wait-for http without host", args: []string{"--wait-for", "http:///health", argvMain}, want: []string{"--wait-for", `"http:///health"`}},
		{name: "wait-for bad after a good one", args: []string{"--wait-for", "tcp:db:5432", "--wait-for", "file:", argvMain}, want: []string{"--wait-for", `"file:"`}},
		{name: "wait-for-timeout negative", args: []string{"--wait-for-timeout", "-1s", argvMain}, want: []string{"--wait-for-timeout", "-1s"}},
		{name: "wait-for-timeout not a duration", args: []string{"--wait-for-timeout", "soon", argvMain}, want: []string{"--wait-for-timeout", `"soon"`}},
		{name: "before pipe", args: []string{"--before", "a | b", argvMain}, want: []string{"--before", `"a | b"`, "shell operator"}},
		{name: "before unbalanced quotes", args: []string{"--before", `migrate "up`, argvMain}, want: []string{"--before", `"migrate \"up"`, "unbalanced"}},
		{name: "helper-retries negative", args: []string{"--helper-retries", "-1", argvMain}, want: []string{"--helper-retries", "-1"}},
		{name: "helper-retries not a number", args: []string{"--helper-retries", "x", argvMain}, want: []string{"--helper-retries", `"x"`}},
		{name: "restart-delay zero", args: []string{"--restart-delay", "0", argvMain}, want: []string{"--restart-delay", "0s"}},
		{name: "restart-max-delay zero", args: []string{"--restart-max-delay", "0s", argvMain}, want: []string{"--restart-max-delay", "0s"}},
		{name: "restart-delay not a duration", args: []string{"--restart-delay", "fast", argvMain}, want: []string{"--restart-delay", `"fast"`}},
		{
			name: "restart-delay longer than max", args: []string{"--restart-delay", "2s", "--restart-max-delay", "1s", argvMain},
			want: []string{"--restart-delay", "2s", "--restart-max-delay", "1s"},
		},
		{
			name: "restart-max-delay below the default delay", args: []string{"--restart-max-delay", "50ms", argvMain},
			want: []string{"--restart-delay", "100ms", "--restart-max-delay", "50ms"},
		},

		// The same through the environment.
		{name: "env wait-for log", env: map[string]string{"MAINSTAY_WAIT_FOR": "tcp:db:5432\nlog:ready"}, args: []string{argvMain}, want: []string{"MAINSTAY_WAIT_FOR", `"log:ready"`}},
		{name: "env wait-for tcp", env: map[string]string{"MAINSTAY_WAIT_FOR": "tcp:"}, args: []string{argvMain}, want: []string{"MAINSTAY_WAIT_FOR", `"tcp:"`}},
		{name: "env wait-for-timeout", env: map[string]string{"MAINSTAY_WAIT_FOR_TIMEOUT": "-1s"}, args: []string{argvMain}, want: []string{"MAINSTAY_WAIT_FOR_TIMEOUT|--wait-for-timeout", "-1s"}},
		{name: "env before pipe", env: map[string]string{"MAINSTAY_BEFORE": "migrate up\na | b"}, args: []string{argvMain}, want: []string{"MAINSTAY_BEFORE", `"a | b"`}},
		{name: "env helper-retries", env: map[string]string{"MAINSTAY_HELPER_RETRIES": "x"}, args: []string{argvMain}, want: []string{"MAINSTAY_HELPER_RETRIES", `"x"`}},
		{name: "env helper-retries negative", env: map[string]string{"MAINSTAY_HELPER_RETRIES": "-1"}, args: []string{argvMain}, want: []string{"MAINSTAY_HELPER_RETRIES", "-1"}},
		{name: "env restart-delay", env: map[string]string{"MAINSTAY_RESTART_DELAY": "0"}, args: []string{argvMain}, want: []string{"MAINSTAY_RESTART_DELAY", "0s"}},
		{
			name: "env restart-delay longer than max", env: map[string]string{"MAINSTAY_RESTART_DELAY": "2s", "MAINSTAY_RESTART_MAX_DELAY": "1s"}, args: []string{argvMain},
			want: []string{"MAINSTAY_RESTART_DELAY", "MAINSTAY_RESTART_MAX_DELAY", "2s", "1s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkBadInput(t, tt.args, tt.env, tt.want) })
	}
}

func TestParseBeforeDefaults(t *testing.T) {
	cli := mustParse(t, "--", "app")
	if cli.HelperRetries != 0 || cli.RestartDelay != 100*time.Millisecond || cli.RestartMaxDelay != 30*time.Second {
		t.Errorf("retries %d, delay %s, max delay %s; want 0, 100ms, 30s", cli.HelperRetries, cli.RestartDelay, cli.RestartMaxDelay)
	}
	if len(cli.WaitFor) != 0 || len(cli.Before) != 0 || cli.waitForTimeout() != 60*time.Second {
		t.Errorf("wait-for %v, before %v, wait-for timeout %s; want none, none, 60s", cli.WaitFor, cli.Before, cli.waitForTimeout())
	}
	// The default follows --ready-timeout; an explicit 0 waits forever.
	if d := mustParse(t, "--ready-timeout", "5m", "--", "app").waitForTimeout(); d != 5*time.Minute {
		t.Errorf("--ready-timeout 5m: wait-for timeout %s, want 5m", d)
	}
	if d := mustParse(t, "--ready-timeout", "5m", "--wait-for-timeout", "0", "--", "app").waitForTimeout(); d != 0 {
		t.Errorf("--wait-for-timeout 0: %s, want 0", d)
	}
}

func TestParseWaitForAndBefore(t *testing.T) {
	t.Setenv("MAINSTAY_BEFORE", "migrate up\n\n  psql -c 'SELECT 1, 2'  \n")
	cli := mustParse(t, "--wait-for", "tcp:db:5432", "--wait-for", "exec:pg_isready -h db", "--wait-for", "http://api:8080/health", "--", "app")
	var specs []string
	for _, p := range cli.WaitFor {
		specs = append(specs, p.String())
	}
	if want := []string{"tcp:db:5432", "exec:pg_isready -h db", "http://api:8080/health"}; strings.Join(specs, "|") != strings.Join(want, "|") {
		t.Errorf("wait-for = %q, want %q", specs, want)
	}
	var lines []string
	for _, b := range cli.Before {
		lines = append(lines, b.line)
	}
	if len(cli.Before) != 2 || lines[1] != "psql -c 'SELECT 1, 2'" || strings.Join(cli.Before[1].argv, "|") != "psql|-c|SELECT 1, 2" {
		t.Errorf("before = %q (%q), want two commands from MAINSTAY_BEFORE", lines, cli.Before)
	}
}
